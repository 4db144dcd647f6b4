"""byzbench: a lab for Byzantine attacks and defenses in distributed learning."""

__version__ = "0.1.0"


class ConfigError(ValueError):
    """A bad configuration or impossible setting; its message is one line naming the
    parameter, its value and what is allowed."""


def require(ok: bool, param: str, value: object, allowed: str) -> None:
    """Raise ConfigError("param=value: allowed") unless ``ok``."""
    if not ok:
        raise ConfigError(f"{param}={value!r} is invalid: {allowed}")
