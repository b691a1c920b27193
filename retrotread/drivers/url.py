"""Device URLs, parsed the way pyserial's ``serial_for_url`` reads its URLs."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from retrotread.errors import DeviceUrlError


@dataclass(frozen=True)
class DeviceUrl:
    """``scheme://location?option=value&...``"""

    text: str
    scheme: str
    location: str
    options: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.text

    @classmethod
    def parse(cls, text: str) -> DeviceUrl:
        if "://" not in text:
            raise DeviceUrlError(f"{text!r} is not a device URL (expected scheme://...)")
        parts = urlsplit(text)
        try:
            pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
        except ValueError as err:
            raise DeviceUrlError(f"{text!r}: malformed options {parts.query!r}") from err
        options: dict[str, str] = {}
        for key, value in pairs:
            if key in options:
                raise DeviceUrlError(f"{text!r}: option {key!r} given twice")
            options[key] = value
        location = parts.netloc + parts.path
        return cls(text, parts.scheme.lower(), location, options)

    def check_options(self, allowed: dict[str, str], grammar: str) -> None:
        unknown = sorted(set(self.options) - set(allowed))
        if unknown:
            valid = ", ".join(allowed) or "none"
            raise DeviceUrlError(
                f"{self.text!r}: unknown option(s) {', '.join(unknown)}; valid options: {valid}\n"
                f"  grammar: {grammar}"
            )

    def flag(self, name: str, grammar: str, default: bool = False) -> bool:
        value = self.options.get(name)
        if value is None:
            return default
        if value.lower() in ("1", "true", "yes", "on", ""):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise DeviceUrlError(
            f"{self.text!r}: option {name}={value!r} must be true or false\n  grammar: {grammar}"
        )

    def number(self, name: str, grammar: str, default: float) -> float:
        value = self.options.get(name)
        if value is None:
            return default
        try:
            return float(value)
        except ValueError:
            raise DeviceUrlError(
                f"{self.text!r}: option {name}={value!r} must be a number\n  grammar: {grammar}"
            ) from None
