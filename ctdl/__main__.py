"""`python -m ctdl ...` is the same as the `ctdl` command."""

from ctdl.cli import main

if __name__ == "__main__":
    main()
