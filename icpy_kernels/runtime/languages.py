"""The language table: what a client names (``python``, ``js``, ``kernel:deno``) -> a kernelspec."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

from ..errors import UnknownLanguage
from .context import ContextBuilder, bash_context, javascript_context, python_context


@dataclass(frozen=True)
class Language:
    name: str
    kernel_name: str
    aliases: tuple[str, ...] = ()
    # How to apply config.working_directory / config.environment; None: not supported.
    context: ContextBuilder | None = None


BUILTIN_LANGUAGES = (
    Language("python", "python3", ("py", "python3"), python_context),
    Language("javascript", "icpy-javascript", ("js", "node"), javascript_context),
    Language("bash", "icpy-bash", ("sh", "shell"), bash_context),
)

KERNEL_PREFIX = "kernel:"


class LanguageTable:
    def __init__(self, ksm: KernelSpecManager, overrides: dict[str, str] | None = None) -> None:
        self.ksm = ksm
        self._by_name: dict[str, Language] = {}
        for lang in BUILTIN_LANGUAGES:
            for name in (lang.name, *lang.aliases):
                self._by_name[name] = lang
        for name, kernel_name in (overrides or {}).items():
            known = next((lang for lang in BUILTIN_LANGUAGES if lang.kernel_name == kernel_name), None)
            self._by_name[name] = Language(name, kernel_name, (), known.context if known else None)
        self._installed: set[str] | None = None

    def installed_kernels(self) -> set[str]:
        if self._installed is None:
            self._installed = set(self.ksm.find_kernel_specs())
        return self._installed

    def languages(self) -> list[Language]:
        """Canonical languages whose kernelspec is present, in table order."""
        seen: dict[str, Language] = {}
        for lang in self._by_name.values():
            if lang.kernel_name in self.installed_kernels():
                seen.setdefault(lang.name, lang)
        return list(seen.values())

    def available(self) -> list[str]:
        return [lang.name for lang in self.languages()]

    def resolve(self, name: str) -> Language:
        key = name.strip().lower()
        if key.startswith(KERNEL_PREFIX):
            kernel_name = name.strip()[len(KERNEL_PREFIX):]
            if kernel_name in self.installed_kernels():
                known = next(
                    (lang for lang in BUILTIN_LANGUAGES if lang.kernel_name == kernel_name), None
                )
                return Language(KERNEL_PREFIX + kernel_name, kernel_name, (), known.context if known else None)
        else:
            lang = self._by_name.get(key)
            if lang is not None and lang.kernel_name in self.installed_kernels():
                return lang
        raise UnknownLanguage(
            name, self.available() + [KERNEL_PREFIX + k for k in sorted(self.installed_kernels())]
        )

    def describe(self) -> list[dict[str, Any]]:
        """For ``languages.list`` / ``GET /api/languages``."""
        out = []
        for lang in self.languages():
            try:
                spec = self.ksm.get_kernel_spec(lang.kernel_name)
            except NoSuchKernel:
                continue
            out.append(
                {
                    "language": lang.name,
                    "aliases": list(lang.aliases),
                    "kernelspec": lang.kernel_name,
                    "display_name": spec.display_name,
                    "kernel_language": spec.language,
                }
            )
        return out
