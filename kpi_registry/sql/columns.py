"""The internal column names of the compiled statement; a user's column whose name collides
with one of them is renamed inside the query."""

from __future__ import annotations

ENTITY, BASE, INDEX, LABEL = "_entity", "_base_period", "_period_index", "_label"
PERIOD = "_period"  # the output period number
CELLS, PRESENT, RUN, ORDER, STOCK_BASE = "_cells", "_present", "_run", "_row_order", "_stock_base"
CARRIED = "_carried_groups"
OPEN_BASE, BASE_COUNT = "_open_base", "_base_count"
FIRST_PERIOD, LAST_PERIOD, NEXT_PERIOD = "_first_period", "_last_period", "_next_period"
FIRST_ROW, MOVED = "_first_row", "_moved"
PROBLEM, TOP, TEXT = "_row_problem", "_top", "_text"  # row checks (checks.py)
INTERNAL = {ENTITY, BASE, PERIOD, INDEX, LABEL, CELLS, PRESENT, RUN, ORDER, STOCK_BASE, CARRIED}
INTERNAL |= {FIRST_PERIOD, LAST_PERIOD, NEXT_PERIOD, FIRST_ROW, MOVED, OPEN_BASE, BASE_COUNT}
INTERNAL |= {PROBLEM, TOP, TEXT}
