"""Attention plots (nmt.viz.attention_plot) and piece-to-word merging (nmt.viz.word_level)."""

import matplotlib.image
import matplotlib.text
import numpy as np
import pytest
import torch
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from nmt.viz.attention_plot import (
    Panel,
    figure_to_image_array,
    plot_attention,
    plot_attention_grid,
    save_figure,
)
from nmt.viz.word_level import group_pieces, merge_groups, merge_to_words, words_from_pieces


def random_attention(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """(rows, cols) weights whose rows are distributions, like a decoder's attention."""
    logits = np.random.default_rng(seed).normal(size=(rows, cols))
    weights = np.exp(logits)
    return weights / weights.sum(axis=1, keepdims=True)


def tokens(n: int, prefix: str) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def heatmap_of(fig: Figure):
    return fig.axes[0].get_images()[0]  # axes[1] is the colourbar


# --- plot_attention -------------------------------------------------------------------------------


def test_figure_has_the_given_title_and_an_agg_canvas():
    fig = plot_attention(random_attention(2, 3), tokens(3, "s"), tokens(2, "t"), title="epoch 3")
    assert fig.axes[0].get_title() == "epoch 3"
    assert isinstance(fig.canvas, FigureCanvasAgg)  # no pyplot, no GUI backend
    assert len(fig.axes) == 2  # heatmap and colourbar


def test_heatmap_data_equals_the_weights_and_the_colour_scale_is_fixed():
    weights = random_attention(4, 5)
    fig = plot_attention(weights, tokens(5, "s"), tokens(4, "t"))
    image = heatmap_of(fig)
    np.testing.assert_allclose(np.asarray(image.get_array()), weights)
    assert image.get_clim() == (0.0, 1.0)
    half_scale = plot_attention(weights, tokens(5, "s"), tokens(4, "t"), vmax=0.5)
    assert heatmap_of(half_scale).get_clim() == (0.0, 0.5)


def test_tokens_label_the_axes_source_on_top():
    src, tgt = ["▁Ein", "▁Hund", "</s>"], ["▁A", "▁dog", "</s>"]
    ax = plot_attention(random_attention(3, 3), src, tgt).axes[0]
    assert [label.get_text() for label in ax.get_xticklabels()] == src
    assert [label.get_text() for label in ax.get_yticklabels()] == tgt
    assert ax.xaxis.get_ticks_position() == "top"


def bright_cell(weights, src: list[str], tgt: list[str]) -> tuple[str, str, list[str]]:
    """Draws `weights` (zero but one cell of 1) and reads the rendered image: the source and target
    labels nearest the bright (yellow) cell, and the target labels from the top of the figure down."""
    fig = plot_attention(weights, src, tgt, colorbar=False)  # no colourbar: its yellow end is bright too
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())  # (H, W, 4), row 0 at the top
    ys, xs = np.nonzero((rgba[..., 0] > 200) & (rgba[..., 1] > 200) & (rgba[..., 2] < 100))
    x, y = xs.mean(), rgba.shape[0] - ys.mean()  # display coordinates: y grows upwards
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]

    def centre(label):
        box = label.get_window_extent(renderer)
        return (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2

    column = min(ax.get_xticklabels(), key=lambda label: abs(centre(label)[0] - x)).get_text()
    row = min(ax.get_yticklabels(), key=lambda label: abs(centre(label)[1] - y)).get_text()
    top_down = [label.get_text() for label in sorted(ax.get_yticklabels(), key=lambda label: -centre(label)[1])]
    return column, row, top_down


@pytest.mark.parametrize(("t", "s"), [(0, 3), (2, 0), (1, 2)])
def test_each_cell_is_drawn_under_its_own_labels_first_target_token_on_top(t, s):
    """Weight (t, s) is drawn in the column labelled with source token s and the row labelled with
    target token t, and the target is read from the top down."""
    src, tgt = ["s0", "s1", "s2", "s3"], ["t0", "t1", "t2"]
    weights = np.zeros((3, 4))
    weights[t, s] = 1.0
    assert bright_cell(weights, src, tgt) == (src[s], tgt[t], tgt)


def test_a_long_source_and_a_short_target_make_a_wide_figure():
    wide = plot_attention(random_attention(2, 30), tokens(30, "s"), tokens(2, "t"))
    tall = plot_attention(random_attention(30, 2), tokens(2, "s"), tokens(30, "t"))
    assert wide.get_figwidth() > 2 * wide.get_figheight()
    assert tall.get_figheight() > 2 * tall.get_figwidth()


def test_torch_tensor_with_grad_is_accepted():
    weights = torch.softmax(torch.randn(3, 4, requires_grad=True), dim=-1)
    fig = plot_attention(weights, tokens(4, "s"), tokens(3, "t"))
    np.testing.assert_allclose(np.asarray(heatmap_of(fig).get_array()), weights.detach().numpy(), rtol=1e-6)


def test_wrong_shape_raises_naming_both_shapes():
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(3, 5\)"):
        plot_attention(random_attention(3, 4), tokens(5, "s"), tokens(3, "t"))


def test_draws_into_given_axes_without_resizing_the_callers_figure():
    fig = Figure(figsize=(5, 4))
    ax = fig.add_subplot()
    assert plot_attention(random_attention(2, 2), ["a", "b"], ["c", "d"], ax=ax) is fig
    assert tuple(fig.get_size_inches()) == (5.0, 4.0)


def test_without_colorbar_only_the_heatmap_is_drawn():
    fig = Figure()
    plot_attention(random_attention(2, 2), ["a", "b"], ["c", "d"], ax=fig.add_subplot(), colorbar=False)
    assert len(fig.axes) == 1


# --- plot_attention_grid --------------------------------------------------------------------------


def grid_panels(shapes):
    return [Panel(random_attention(t, s, seed=k), tokens(s, "s"), tokens(t, "t"), title=f"panel {k}")
            for k, (t, s) in enumerate(shapes)]


def test_grid_puts_panels_in_reading_order_on_one_colour_scale():
    panels = grid_panels([(3, 4), (2, 5), (4, 4)])
    fig = plot_attention_grid(panels, columns=2, title="greedy, word level")
    heatmaps = [ax for ax in fig.axes if ax.get_images() and ax.get_title()]
    assert [ax.get_title() for ax in heatmaps] == ["panel 0", "panel 1", "panel 2"]
    top = max(p.weights.max() for p in panels)  # default scale: the largest weight anywhere
    for ax, panel in zip(heatmaps, panels, strict=True):
        np.testing.assert_allclose(np.asarray(ax.get_images()[0].get_array()), panel.weights)
        assert ax.get_images()[0].get_clim() == (0.0, top)
    assert len(fig.axes) == 2 * 2 + 1  # a 2 x 2 grid (one cell empty) and one shared colourbar
    assert not fig.axes[3].axison  # the empty cell is hidden
    # Figure.get_suptitle is new in matplotlib 3.8; pyproject accepts 3.7
    assert "greedy, word level" in [text.get_text() for text in fig.findobj(matplotlib.text.Text)]
    fixed = plot_attention_grid(panels, columns=2, vmax=1.0)
    assert fixed.axes[0].get_images()[0].get_clim() == (0.0, 1.0)


def test_grid_image_grows_with_columns_and_rows(tmp_path):
    one = save_figure(plot_attention_grid(grid_panels([(4, 4)])), tmp_path / "one.png")
    wide = save_figure(plot_attention_grid(grid_panels([(4, 4)] * 2), columns=2), tmp_path / "wide.png")
    tall = save_figure(plot_attention_grid(grid_panels([(4, 4)] * 2), columns=1), tmp_path / "tall.png")
    one_px, wide_px, tall_px = (matplotlib.image.imread(p).shape for p in (one, wide, tall))
    assert wide_px[1] > 1.5 * one_px[1] and wide_px[0] == one_px[0]
    assert tall_px[0] > 1.5 * one_px[0] and tall_px[1] == one_px[1]


def test_grid_rejects_no_panels_and_bad_columns():
    with pytest.raises(ValueError, match="no panels"):
        plot_attention_grid([])
    with pytest.raises(ValueError, match="columns"):
        plot_attention_grid(grid_panels([(2, 2)]), columns=0)


# --- saving and rendering -------------------------------------------------------------------------


def test_saved_png_is_readable_and_grows_with_the_number_of_tokens(tmp_path):
    small = save_figure(
        plot_attention(random_attention(3, 3), tokens(3, "s"), tokens(3, "t")), tmp_path / "a.png"
    )
    large = save_figure(
        plot_attention(random_attention(25, 25), tokens(25, "s"), tokens(25, "t")),
        tmp_path / "nested" / "b.png",
    )
    small_pixels, large_pixels = matplotlib.image.imread(small), matplotlib.image.imread(large)
    assert small_pixels.ndim == 3 and small_pixels.shape[2] in (3, 4)
    assert large_pixels.shape[0] > small_pixels.shape[0]
    assert large_pixels.shape[1] > small_pixels.shape[1]
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.png", "b.png", "nested"]  # no temp files left


def test_svg_and_pdf_saving(tmp_path):
    fig = plot_attention(random_attention(2, 3), tokens(3, "s"), tokens(2, "t"))
    svg, pdf = save_figure(fig, tmp_path / "att.svg"), save_figure(fig, tmp_path / "att.PDF")
    assert b"<svg" in svg.read_bytes()[:500]
    assert pdf.read_bytes().startswith(b"%PDF")


def test_a_save_that_fails_midway_keeps_the_previous_file_whole(tmp_path, monkeypatch):
    path = save_figure(plot_attention(random_attention(2, 3), tokens(3, "s"), tokens(2, "t")), tmp_path / "att.png")
    before = path.read_bytes()
    fig = plot_attention(random_attention(4, 4), tokens(4, "s"), tokens(4, "t"))

    def fail_midway(file, **_):
        file.write(b"\x89PNG half a figure")
        raise OSError("disk full")

    monkeypatch.setattr(fig, "savefig", fail_midway)
    with pytest.raises(OSError, match="disk full"):
        save_figure(fig, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["att.png"]  # no temporary file left either


def test_unknown_suffix_raises_listing_valid_formats(tmp_path):
    fig = plot_attention(random_attention(2, 2), ["a", "b"], ["c", "d"])
    with pytest.raises(ValueError, match="png.*svg.*pdf"):
        save_figure(fig, tmp_path / "att.jpg")
    assert not any(tmp_path.iterdir())


def test_figure_to_image_array_is_hwc_uint8_of_the_figure_size():
    fig = plot_attention(random_attention(3, 4), tokens(4, "s"), tokens(3, "t"))
    image = figure_to_image_array(fig)
    width, height = fig.get_size_inches() * fig.dpi
    assert image.dtype == np.uint8
    assert image.shape == (round(height), round(width), 3)
    assert image.min() < 128 < image.max()  # something was drawn


def test_figure_to_image_array_on_a_non_agg_canvas_matches_agg():
    fig = plot_attention(random_attention(3, 4), tokens(4, "s"), tokens(3, "t"))
    expected = figure_to_image_array(fig)
    FigureCanvasBase(fig)  # as if the figure lived on some other backend
    np.testing.assert_array_equal(figure_to_image_array(fig), expected)


# --- word_level -----------------------------------------------------------------------------------

SRC = ["▁Ein", "▁Hund", "e", "▁läuft", "</s>"]
TGT = ["▁Do", "g", "s", "▁run", "</s>"]
# (len(TGT), len(SRC)); every row sums to 1.
PIECE_WEIGHTS = np.array(
    [
        [0.10, 0.60, 0.20, 0.05, 0.05],  # ▁Do
        [0.00, 0.50, 0.40, 0.10, 0.00],  # g
        [0.10, 0.20, 0.60, 0.10, 0.00],  # s
        [0.00, 0.10, 0.00, 0.80, 0.10],  # ▁run
        [0.00, 0.00, 0.00, 0.10, 0.90],  # </s>
    ]
)


def test_group_pieces_splits_on_word_marks_and_isolates_special_tokens():
    assert group_pieces(SRC) == [[0], [1, 2], [3], [4]]
    assert group_pieces(TGT) == [[0, 1, 2], [3], [4]]
    assert group_pieces(["▁", "(", "▁a", "</s>"]) == [[0, 1], [2], [3]]  # lone ▁ joins the next piece
    assert group_pieces(["▁", "▁x"]) == [[0, 1]]
    assert group_pieces(["<unk>", "s", "▁b"]) == [[0], [1], [2]]  # nothing continues a special token
    assert group_pieces(["ab", "c"]) == [[0, 1]]  # no leading ▁ still makes a word
    assert group_pieces([]) == []


def test_words_from_pieces_drop_the_marks():
    assert words_from_pieces(SRC) == ["Ein", "Hunde", "läuft", "</s>"]
    assert words_from_pieces(TGT) == ["Dogs", "run", "</s>"]
    assert words_from_pieces(["▁", "(", "▁a"]) == ["(", "a"]


def test_merge_sums_source_pieces_and_averages_target_pieces():
    merged, src_words, tgt_words = merge_to_words(PIECE_WEIGHTS, SRC, TGT)
    # Columns: Ein | Hund+e | läuft | </s>; rows: mean(▁Do, g, s) | ▁run | </s>.
    expected = np.array(
        [
            [0.20 / 3, 2.50 / 3, 0.25 / 3, 0.05 / 3],
            [0.00, 0.10, 0.80, 0.10],
            [0.00, 0.00, 0.10, 0.90],
        ]
    )
    np.testing.assert_allclose(merged, expected)
    assert src_words == ["Ein", "Hunde", "läuft", "</s>"]
    assert tgt_words == ["Dogs", "run", "</s>"]


def test_rows_sum_to_one_before_and_after_merging():
    weights = random_attention(len(TGT), len(SRC), seed=1)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    merged, _, _ = merge_to_words(torch.from_numpy(weights), SRC, TGT)
    np.testing.assert_allclose(merged.sum(axis=1), 1.0)


def test_merged_weights_plot_with_word_labels():
    merged, src_words, tgt_words = merge_to_words(PIECE_WEIGHTS, SRC, TGT)
    fig = plot_attention(merged, src_words, tgt_words)
    np.testing.assert_allclose(np.asarray(heatmap_of(fig).get_array()), merged)


def test_merge_groups_takes_explicit_groups_and_checks_them():
    merged = merge_groups(PIECE_WEIGHTS, [[0, 1], [2, 3, 4]], [[0], [1, 2, 3, 4]])
    np.testing.assert_allclose(merged[0], [0.70, 0.30])
    np.testing.assert_allclose(merged.sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="source groups must cover"):
        merge_groups(PIECE_WEIGHTS, [[0, 2], [1, 3, 4]], [[0, 1, 2, 3, 4]])


def test_merge_rejects_wrong_shape():
    with pytest.raises(ValueError, match=r"\(5, 4\).*\(5, 5\)"):
        merge_to_words(PIECE_WEIGHTS[:, :4], SRC, TGT)
