"""The function catalog: the single source for the parser's checks, every output, and the
formula-language reference page (so documentation and behaviour cannot drift apart)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Function:
    name: str
    kind: str  # "scalar" (cell by cell), "aggregate" (rows -> one value per period), "time"
    min_args: int
    max_args: int | None
    signature: str
    summary: str
    example: str
    boolean_args: tuple[int, ...] = ()  # argument positions that must be conditions
    calendar: bool = False  # a time function read off each period's dates (periods.calendar_days)


FUNCTIONS: dict[str, Function] = {
    f.name: f
    for f in [
        Function(
            "if",
            "scalar",
            3,
            3,
            "if(condition, then, else)",
            "The `then` value where the condition holds, else the `else` value. A condition "
            "on a missing value is false.",
            "if(revenue > 0, 1, 0)",
            boolean_args=(0,),
        ),
        Function(
            "abs", "scalar", 1, 1, "abs(x)", "Absolute value.", "abs(revenue - previous(revenue))"
        ),
        Function(
            "greatest",
            "scalar",
            2,
            None,
            "greatest(x, y, ...)",
            "The largest of its arguments, ignoring missing ones.",
            "greatest(revenue, 0)",
        ),
        Function(
            "least",
            "scalar",
            2,
            None,
            "least(x, y, ...)",
            "The smallest of its arguments, ignoring missing ones.",
            "least(used_seats, seats)",
        ),
        Function(
            "coalesce",
            "scalar",
            2,
            None,
            "coalesce(x, y, ...)",
            "The first argument that is not missing. Also ends the 'no previous period' gap: "
            "`coalesce(previous(x), 0)` is defined in the first period.",
            "coalesce(discount, 0)",
        ),
        Function(
            "months_in_period",
            "time",
            0,
            0,
            "months_in_period()",
            "How many months one period of the result spans: 1 by month, 3 by quarter, 12 by "
            "year (a day is 1/30.44 of a month, a week 7/30.44); 1 without a period column. "
            "Turns a monthly amount into one per period, so a ratio of a monthly figure to a "
            "per-period rate stays right at every grain.",
            "average_revenue_per_account * months_in_period() / (customer_churn_rate / 100)",
        ),
        Function(
            "days_in_period",
            "time",
            0,
            0,
            "days_in_period()",
            "Calendar days in each period of the result: 28 to 31 by month (29 in February "
            "2024), 90 to 92 by quarter, 365 or 366 by year, 7 by week, 1 by day; a period "
            "the data ends inside still counts its full length. Read per period, so "
            "`active_days / days_in_period()` is right in every month and at every grain. "
            "Needs a period column. The site's calculator, whose inputs are monthly figures, "
            "uses an average month (30.44 days).",
            "mean(active_days / days_in_period(), active_days > 0) * 100",
            calendar=True,
        ),
        Function(
            "business_days_in_period",
            "time",
            0,
            0,
            "business_days_in_period()",
            "Monday-to-Friday days in each period of the result (23 in January 2024, 21 in "
            "February 2024, 5 by week; by day 1 on a weekday and 0 on a weekend). Public "
            "holidays differ by country and are not subtracted: give them as a datapoint "
            "where they matter. Needs a period column; the calculator uses an average month "
            "(21.74 days).",
            "sum(active_weekdays) / (count(active_weekdays, active_weekdays > 0) * "
            "business_days_in_period())",
            calendar=True,
        ),
        Function(
            "previous",
            "time",
            1,
            1,
            "previous(x)",
            "The value of `x` one period earlier: for a datapoint, the same entity's value; "
            "for a KPI, the same group's value. Missing in the first period of the data.",
            "revenue - previous(revenue)",
        ),
        Function(
            "ever_before",
            "time",
            1,
            1,
            "ever_before(condition)",
            "True where the condition held for the same entity in any earlier period of the "
            "data. Tells a returning customer from a new one.",
            "sum(revenue, previous(revenue) = 0 and ever_before(revenue > 0))",
            boolean_args=(0,),
        ),
        Function(
            "sum",
            "aggregate",
            1,
            2,
            "sum(x[, filter])",
            "Total of `x` over the rows of the period (and group) where the filter holds; "
            "0 when no row qualifies.",
            "sum(revenue, revenue > previous(revenue))",
            boolean_args=(1,),
        ),
        Function(
            "count",
            "aggregate",
            1,
            2,
            "count(x[, filter])",
            "Number of rows where `x` is not missing and the filter holds. Datapoints whose "
            "missing rows mean 0 count every known entity: filter on `x > 0` to count payers.",
            "count(revenue, revenue > 0)",
            boolean_args=(1,),
        ),
        Function(
            "count_distinct",
            "aggregate",
            1,
            2,
            "count_distinct(x[, filter])",
            "Number of distinct non-missing values of `x` where the filter holds.",
            "count_distinct(plan_price, revenue > 0)",
            boolean_args=(1,),
        ),
        Function(
            "mean",
            "aggregate",
            1,
            2,
            "mean(x[, filter])",
            "Arithmetic mean of the non-missing values of `x` where the filter holds.",
            "mean(revenue, revenue > 0)",
            boolean_args=(1,),
        ),
        Function(
            "median",
            "aggregate",
            1,
            2,
            "median(x[, filter])",
            "Median of the non-missing values of `x` where the filter holds.",
            "median(revenue, revenue > 0)",
            boolean_args=(1,),
        ),
        Function(
            "min",
            "aggregate",
            1,
            2,
            "min(x[, filter])",
            "Smallest non-missing value of `x` where the filter holds.",
            "min(revenue, revenue > 0)",
            boolean_args=(1,),
        ),
        Function(
            "max",
            "aggregate",
            1,
            2,
            "max(x[, filter])",
            "Largest non-missing value of `x` where the filter holds.",
            "max(revenue)",
            boolean_args=(1,),
        ),
    ]
}

#: The calendar functions in an average Gregorian month: what the site's calculator, whose
#: inputs are monthly figures, uses for them.
AVERAGE_MONTH = {"days_in_period": 30.436875, "business_days_in_period": 21.740625}  # x 5/7

# The classes of functions, as every backend's function table groups them.
AGGREGATES = frozenset(n for n, f in FUNCTIONS.items() if f.kind == "aggregate")
SCALARS = frozenset(n for n, f in FUNCTIONS.items() if f.kind == "scalar")
TIME_FUNCTIONS = frozenset(n for n, f in FUNCTIONS.items() if f.kind == "time")
#: The time functions whose value is a fact of each period's calendar: its days, its business
#: days (the pandas engine counts them with periods.calendar_days, SQL with date arithmetic).
CALENDAR_FUNCTIONS = tuple(n for n, f in FUNCTIONS.items() if f.calendar)

OPERATORS: list[tuple[str, str]] = [
    (
        "^",
        "power, right-associative: `2 ^ 3 ^ 2` is `2 ^ 9`; `0 ^ -1` (a division by zero) and "
        "a negative base with a fractional exponent, such as `(-8) ^ 0.5`, give a missing value",
    ),
    ("- (unary)", "negation"),
    (
        "* /",
        "multiplication and division; division by zero gives a missing value, never an error",
    ),
    ("+ -", "addition and subtraction"),
    (
        "= != < <= > >=",
        "comparison (`==` and `<>` are accepted too); a comparison with a missing value is false",
    ),
    ("not", "logical negation"),
    ("and", "logical conjunction"),
    ("or", "logical disjunction"),
]

#: How every engine (pandas, DuckDB and the generated SQL, the site's calculators) treats a
#: missing value: one rule, listed in the formula-language reference.
MISSING_VALUES: list[str] = [
    "**Missing in, missing out.** `+ - * / ^`, unary `-` and `abs()` give a missing value when "
    "any operand is missing: `x ^ 0` and `1 ^ x` too.",
    "**No number, no value.** `x / 0`, `0 ^ -1` and `(-8) ^ 0.5` are missing, and so is a KPI "
    "whose value is not a finite number (past about ±1.8e308): a KPI is never infinite, and "
    "another KPI reading it sees a missing value. Within one formula a step may overflow to "
    "infinity and the formula go on (`1 / (x * y)` is 0 where `x * y` overflows); a step that "
    "then has no numeric answer (`inf - inf`, `0 * inf`) is missing.",
    "**Comparisons with a missing value are false**, `!=` included: `x != y` is false where "
    "either is missing, and `not (x > 0)` is true.",
    "**Where missing ends.** `coalesce(x, y, ...)` gives its first value that is not missing; "
    "`greatest()` and `least()` ignore missing arguments (missing only when all are); "
    "`if(c, a, b)` takes `b` where the condition is false, also because of a missing value; "
    "aggregates skip missing values (`sum` and `count` of none are 0, the others missing).",
    "**Limits.** PostgreSQL stops with an error where a step overflows. Sums and differences "
    "beyond ±1.8e308 are not checked step by step in SQL, so engines may differ there; a "
    "datapoint column holding infinity is outside the rule.",
]
