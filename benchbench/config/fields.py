"""Field types every scenario block shares: a count given as true/false or 2.5 is a mistake, not 1
or 2 (``bool`` is an ``int`` in Python, so plain ``int`` would take ``true``); inf/nan are not
durations."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Strict

Int = Annotated[int, Strict()]
STRICT = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
