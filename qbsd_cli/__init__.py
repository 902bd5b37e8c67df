"""qbsd: musical query by semantic description (Qin et al.), as a command-line tool."""

__version__ = "0.1.0"
