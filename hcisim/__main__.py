"""``python -m hcisim``: the same command as ``hcisim``."""

from hcisim.cli import main

if __name__ == "__main__":
    main()
