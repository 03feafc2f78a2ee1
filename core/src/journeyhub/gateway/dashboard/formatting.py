"""How the dashboard writes times, rates and names, and the Jinja set-up of its templates
(``templates/``): these functions are the templates' filters."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig

from journeyhub.model import utcnow

TEMPLATES = Path(__file__).parent / "templates"


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """``"4 min ago"``, or ``"in 2 min"`` for a time to come; ``"never"`` for None."""
    if moment is None:
        return "never"
    seconds = ((now or utcnow()) - moment).total_seconds()
    if -10 < seconds < 0:
        return "in a moment"
    if seconds < 0:
        return "in " + ago(now or utcnow(), moment).removesuffix(" ago")
    if seconds < 10:
        return "just now"
    if seconds < 60:
        return f"{int(seconds)} s ago"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 48 * 3600:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} d ago"


def utc_text(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


def percent(rate: float | None) -> str:
    if rate is None:
        return "—"
    value = rate * 100
    return f"{value:.0f}%" if value in (0, 100) or value >= 10 else f"{value:.1f}%"


def millis(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.0f} ms" if value < 1000 else f"{value / 1000:.1f} s"


def humanize(name: str) -> str:
    return name.replace("_", " ").capitalize()


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    def setup(engine: JinjaTemplateEngine) -> None:
        env = engine.engine
        env.filters.update(utc=utc_text, percent=percent, ms=millis, humanize=humanize)
        env.trim_blocks = True
        env.lstrip_blocks = True

    return TemplateConfig(directory=TEMPLATES, engine=JinjaTemplateEngine, engine_callback=setup)
