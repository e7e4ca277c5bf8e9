"""TensorBoard events for a run: scalars, validation metrics, attention statistics and heatmaps."""

from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

from nmt.viz.attention_plot import figure_to_image_array, plot_attention


class TrainingLogger:
    def __init__(self, run_dir: Path, enabled: bool = True):
        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard")) if enabled else None

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if self.writer is None:
            return
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def validation(self, step: int, result) -> None:
        """Logs loss, perplexity, BLEU, the attention statistics and one heatmap per tracked
        validation sentence."""
        self.scalars(step, {"valid/loss": result.loss, "valid/ppl": result.ppl, "valid/bleu": result.bleu,
                                  "valid/chrf": result.chrf})
        stats = result.attention_stats
        if stats is not None and stats.sentences:
            self.scalars(step, {f"attention_stats/{name}": value for name, value in stats.as_dict().items()
                                if name != "sentences"})
        if self.writer is None:
            return
        for i, (src_pieces, tgt_pieces, weights) in enumerate(result.attention):
            fig = plot_attention(weights, src_pieces, tgt_pieces, title=f"validation sentence {i} (step {step})")
            self.writer.add_image(f"attention/sentence_{i}", figure_to_image_array(fig), step,
                                  dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
