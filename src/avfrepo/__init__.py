"""avfrepo: keeps the signed pacman repository [avf] for Arch Linux ARM on AVF current."""

__version__ = "0.1.0"
