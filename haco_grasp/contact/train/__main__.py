"""``python -m haco_grasp.contact.train`` (torchrun-friendly): see :func:`haco_grasp.contact.train.cli.main`."""

from haco_grasp.contact.train.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
