WITH source AS (
  SELECT
    customer_id AS _entity,
    (
      CAST(SUBSTRING(CAST(month AS VARCHAR) FROM 1 FOR 4) AS INT) - 1970
    ) * 12 + CAST(SUBSTRING(CAST(month AS VARCHAR) FROM 6 FOR 2) AS INT) - 1 AS _base_period,
    segment,
    NULLIF(CAST(mrr AS DOUBLE PRECISION), CAST('NaN' AS DOUBLE PRECISION)) AS revenue
  FROM analytics.mrr
  WHERE
    NOT customer_id IS NULL
), cells AS (
  /* Sums of several rows are rounded to the finest power of ten above their floating-point error (0.1 + 0.2 gives 0.3, not 0.30000000000000004), as kpi eval rounds them, so that both give the same numbers; a single row is kept as it is */
  SELECT
    _entity,
    _base_period,
    CASE
      WHEN _revenue_rows > 1 AND _revenue_error < 1 AND _revenue_error >= 1e-22
      THEN CAST(FLOOR(revenue * POWER(10, FLOOR(-LN(_revenue_error) * 0.4342944819032518e0)) + 0.5) AS DOUBLE PRECISION) / POWER(10, FLOOR(-LN(_revenue_error) * 0.4342944819032518e0))
      ELSE revenue
    END AS revenue,
    segment
  FROM (
    SELECT
      _entity,
      _base_period,
      SUM(revenue) AS revenue,
      COUNT(revenue) AS _revenue_rows,
      SUM(ABS(revenue)) * (
        COUNT(revenue) + 2
      ) * 2.220446049250313e-16 AS _revenue_error,
      MAX(segment) AS segment
    FROM source
    GROUP BY
      _entity,
      _base_period
  ) AS row_sums
), bounds AS (
  SELECT
    MIN(_base_period) AS _first,
    MAX(_base_period) AS _last
  FROM cells
), base_periods AS (
  SELECT
    s._base_period
  FROM bounds
  CROSS JOIN GENERATE_SERIES(_first, _last) AS s(_base_period)
), calendar AS (
  SELECT
    _base_period,
    CAST(FLOOR(CAST(_base_period AS DOUBLE PRECISION) / 3.0) AS INT) AS _period
  FROM base_periods
), periods AS (
  SELECT
    _period,
    MAX(_base_period) AS _stock_base,
    _period - MIN(_period) OVER () AS _period_index,
    SUBSTRING(CAST(CAST(CAST('1970-01-01' AS DATE) + (
      INTERVAL '1 MONTH' * _period * 3
    ) AS DATE) AS VARCHAR) FROM 1 FOR 4) || 'Q' || CAST(EXTRACT(QUARTER FROM CAST(CAST('1970-01-01' AS DATE) + (
      INTERVAL '1 MONTH' * _period * 3
    ) AS DATE)) AS VARCHAR) AS _label
  FROM calendar
  GROUP BY
    _period
), period_cells AS (
  SELECT
    c._entity,
    k._period,
    MAX(CASE WHEN c._base_period = p._stock_base THEN c.revenue END) AS revenue,
    (
      ARRAY_AGG(c.segment ORDER BY c._base_period DESC NULLS LAST) FILTER(WHERE
        NOT c._base_period IS NULL)
    )[1] AS segment,
    (
      ARRAY_AGG(c.segment ORDER BY c._base_period ASC) FILTER(WHERE
        NOT c._base_period IS NULL)
    )[1] AS _first_segment,
    MAX(CASE WHEN COALESCE(c.revenue, 0) > 0 THEN 1 ELSE 0 END) AS held_in_period
  FROM cells AS c
  JOIN calendar AS k
    ON k._base_period = c._base_period
  JOIN periods AS p
    ON p._period = k._period
  GROUP BY
    c._entity,
    k._period
), span AS (
  SELECT
    MIN(_period) AS _first_period,
    MAX(_period) AS _last_period
  FROM periods
), present_cells AS (
  SELECT
    c._entity,
    c._period,
    COALESCE(c.revenue, 0) AS revenue,
    c.segment,
    c._first_segment,
    c.held_in_period
  FROM period_cells AS c
), present_rows AS (
  /* sparse: rows and the period after each; cells without rows (other than the period after a row) change none of these numbers */
  SELECT
    *,
    CASE
      WHEN LAG(_period) OVER (PARTITION BY _entity ORDER BY _period) = _period - 1
      THEN LAG(revenue) OVER (PARTITION BY _entity ORDER BY _period)
      WHEN _period = (
        SELECT
          _first_period
        FROM span
      )
      THEN NULL
      ELSE 0
    END AS previous_revenue,
    COALESCE(
      MAX(CASE WHEN held_in_period = 1 THEN 1 ELSE 0 END) OVER (
        PARTITION BY _entity
        ORDER BY _period
        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
      ),
      0
    ) = 1 AS ever_before,
    LEAD(_period) OVER (PARTITION BY _entity ORDER BY _period) AS _next_period,
    LAG(_period) OVER (PARTITION BY _entity ORDER BY _period) IS NULL AS _first_row
  FROM present_cells
), rows_1 AS (
  SELECT
    _entity,
    _period,
    revenue,
    segment,
    previous_revenue,
    ever_before
  FROM present_rows
  UNION ALL
  SELECT
    r._entity,
    r._period + 1 AS _period,
    0 AS revenue,
    r.segment,
    r.revenue AS previous_revenue,
    r.ever_before OR r.held_in_period = 1 AS ever_before
  FROM present_rows AS r
  WHERE
    (
      r._next_period IS NULL OR r._next_period > r._period + 1
    )
    AND r._period < (
      SELECT
        _last_period
      FROM span
    )
), group_changes AS (
  SELECT
    CASE WHEN _first_row THEN _first_segment ELSE segment END AS segment,
    CASE
      WHEN _first_row
      THEN (
        SELECT
          _first_period
        FROM span
      )
      ELSE _period
    END AS _period,
    1 AS _moved
  FROM present_rows
  UNION ALL
  SELECT
    segment,
    _next_period AS _period,
    -1 AS _moved
  FROM present_rows
  WHERE
    NOT _next_period IS NULL
  UNION ALL
  SELECT
    _first_segment AS segment,
    _period,
    -1 AS _moved
  FROM present_rows
  WHERE
    _first_row AND _first_segment IS DISTINCT FROM segment
  UNION ALL
  SELECT
    segment,
    _period,
    1 AS _moved
  FROM present_rows
  WHERE
    _first_row AND _first_segment IS DISTINCT FROM segment
), group_moves AS (
  SELECT
    segment,
    _period,
    SUM(_moved) AS _moved
  FROM group_changes
  GROUP BY
    segment,
    _period
), aggregates AS (
  SELECT
    segment,
    _period,
    SUM(previous_revenue) AS starting_revenue,
    SUM(
      CASE
        WHEN previous_revenue > 0 AND revenue > previous_revenue
        THEN revenue - previous_revenue
      END
    ) AS expansion_revenue,
    SUM(
      CASE
        WHEN previous_revenue > 0 AND revenue > 0 AND revenue < previous_revenue
        THEN previous_revenue - revenue
      END
    ) AS contraction_revenue,
    SUM(CASE WHEN previous_revenue > 0 AND revenue = 0 THEN previous_revenue END) AS churned_revenue,
    SUM(
      CASE WHEN previous_revenue = 0 AND revenue > 0 AND NOT ever_before THEN revenue END
    ) AS new_revenue,
    SUM(CASE WHEN previous_revenue = 0 AND revenue > 0 AND ever_before THEN revenue END) AS reactivation_revenue
  FROM rows_1
  GROUP BY
    segment,
    _period
), group_keys AS (
  SELECT DISTINCT
    segment
  FROM group_moves
), period_values AS (
  SELECT
    g.segment,
    p._period,
    p._period_index,
    p._label,
    SUM(COALESCE(m._moved, 0)) OVER (
      PARTITION BY g.segment
      ORDER BY p._period
      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    ) AS _cells,
    CASE WHEN p._period_index >= 1 THEN COALESCE(a.starting_revenue, 0) END AS starting_revenue,
    CASE WHEN p._period_index >= 1 THEN COALESCE(a.expansion_revenue, 0) END AS expansion_revenue,
    CASE WHEN p._period_index >= 1 THEN COALESCE(a.contraction_revenue, 0) END AS contraction_revenue,
    CASE WHEN p._period_index >= 1 THEN COALESCE(a.churned_revenue, 0) END AS churned_revenue,
    CASE WHEN p._period_index >= 1 THEN COALESCE(a.new_revenue, 0) END AS new_revenue,
    CASE WHEN p._period_index >= 1 THEN COALESCE(a.reactivation_revenue, 0) END AS reactivation_revenue
  FROM periods AS p
  CROSS JOIN group_keys AS g
  LEFT JOIN aggregates AS a
    ON a._period = p._period AND a.segment IS NOT DISTINCT FROM g.segment
  LEFT JOIN group_moves AS m
    ON m._period = p._period AND m.segment IS NOT DISTINCT FROM g.segment
), kpis_1 AS (
  SELECT
    *,
    CAST((
      starting_revenue + expansion_revenue - contraction_revenue - churned_revenue
    ) AS DOUBLE PRECISION) / NULLIF(starting_revenue, 0) * 100 AS net_revenue_retention,
    CAST((
      starting_revenue - contraction_revenue - churned_revenue
    ) AS DOUBLE PRECISION) / NULLIF(starting_revenue, 0) * 100 AS gross_revenue_retention,
    CAST(expansion_revenue AS DOUBLE PRECISION) / NULLIF(starting_revenue, 0) * 100 AS expansion_revenue_rate,
    LAG(expansion_revenue) OVER (PARTITION BY segment ORDER BY _period) AS previous_expansion_revenue,
    CAST((
      new_revenue + expansion_revenue + reactivation_revenue
    ) AS DOUBLE PRECISION) / NULLIF(contraction_revenue + churned_revenue, 0) AS quick_ratio
  FROM period_values
), kpis_2 AS (
  SELECT
    *,
    CAST((
      expansion_revenue - previous_expansion_revenue
    ) AS DOUBLE PRECISION) / NULLIF(previous_expansion_revenue, 0) * 100 AS expansion_revenue_growth_rate
  FROM kpis_1
)
SELECT
  _label AS month,
  segment,
  CASE
    WHEN ABS(starting_revenue) < CAST('Infinity' AS DOUBLE PRECISION)
    THEN starting_revenue
  END AS starting_revenue,
  CASE
    WHEN ABS(expansion_revenue) < CAST('Infinity' AS DOUBLE PRECISION)
    THEN expansion_revenue
  END AS expansion_revenue,
  CASE
    WHEN ABS(contraction_revenue) < CAST('Infinity' AS DOUBLE PRECISION)
    THEN contraction_revenue
  END AS contraction_revenue,
  CASE
    WHEN ABS(churned_revenue) < CAST('Infinity' AS DOUBLE PRECISION)
    THEN churned_revenue
  END AS churned_revenue,
  CASE
    WHEN ABS(new_revenue) < CAST('Infinity' AS DOUBLE PRECISION)
    THEN new_revenue
  END AS new_revenue,
  CASE
    WHEN ABS(reactivation_revenue) < CAST('Infinity' AS DOUBLE PRECISION)
    THEN reactivation_revenue
  END AS reactivation_revenue,
  CASE
    WHEN ABS(net_revenue_retention) < CAST('Infinity' AS DOUBLE PRECISION)
    THEN net_revenue_retention
  END AS net_revenue_retention,
  CASE
    WHEN ABS(gross_revenue_retention) < CAST('Infinity' AS DOUBLE PRECISION)
    THEN gross_revenue_retention
  END AS gross_revenue_retention,
  CASE
    WHEN ABS(expansion_revenue_rate) < CAST('Infinity' AS DOUBLE PRECISION)
    THEN expansion_revenue_rate
  END AS expansion_revenue_rate,
  CASE
    WHEN ABS(expansion_revenue_growth_rate) < CAST('Infinity' AS DOUBLE PRECISION)
    THEN expansion_revenue_growth_rate
  END AS expansion_revenue_growth_rate,
  CASE
    WHEN ABS(quick_ratio) < CAST('Infinity' AS DOUBLE PRECISION)
    THEN quick_ratio
  END AS quick_ratio
FROM kpis_2
WHERE
  _cells > 0
ORDER BY
  _period,
  segment
