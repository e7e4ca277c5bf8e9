"""`python -m nmt.train [overrides]`: the same as `nmt-train`, for launchers that want a module,
e.g. `torchrun --nproc_per_node=2 -m nmt.train ...` (see docs/scaling.md)."""

from nmt.cli.train import main

if __name__ == "__main__":
    main()
