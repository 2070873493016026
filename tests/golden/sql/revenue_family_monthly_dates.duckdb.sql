WITH source AS (
  SELECT
    account AS _entity,
    CAST((
      EXTRACT(YEAR FROM billing_month) - 1970
    ) * 12 + EXTRACT(MONTH FROM billing_month) - 1 AS INT) AS _base_period,
    NULLIF(CAST(mrr_usd AS DOUBLE), CAST('NaN' AS DOUBLE)) AS revenue
  FROM billing.customer_months
  WHERE
    NOT account IS NULL
), cells AS (
  /* Sums of several rows are rounded to the finest power of ten above their floating-point error (0.1 + 0.2 gives 0.3, not 0.30000000000000004), as kpi eval rounds them, so that both give the same numbers; a single row is kept as it is */
  SELECT
    _entity,
    _base_period,
    CASE
      WHEN _revenue_rows > 1 AND _revenue_error < 1 AND _revenue_error >= 1e-22
      THEN FLOOR(revenue * POWER(10, FLOOR(-LN(_revenue_error) * 0.4342944819032518e0)) + 0.5) / POWER(10, FLOOR(-LN(_revenue_error) * 0.4342944819032518e0))
      ELSE revenue
    END AS revenue
  FROM (
    SELECT
      _entity,
      _base_period,
      SUM(revenue) AS revenue,
      COUNT(revenue) AS _revenue_rows,
      SUM(ABS(revenue)) * (
        COUNT(revenue) + 2
      ) * 2.220446049250313e-16 AS _revenue_error
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
), periods AS (
  SELECT
    _base_period AS _period,
    _base_period AS _stock_base,
    _base_period - MIN(_base_period) OVER () AS _period_index,
    CAST(CAST(CAST('1970-01-01' AS DATE) + INTERVAL (_base_period) MONTH AS DATE) AS TIMESTAMP) AS _label
  FROM base_periods
), span AS (
  SELECT
    MIN(_period) AS _first_period,
    MAX(_period) AS _last_period
  FROM periods
), present_cells AS (
  SELECT
    c._entity,
    c._base_period AS _period,
    COALESCE(c.revenue, 0) AS revenue
  FROM cells AS c
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
      MAX(CASE WHEN revenue > 0 THEN 1 ELSE 0 END) OVER (
        PARTITION BY _entity
        ORDER BY _period
        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
      ),
      0
    ) = 1 AS ever_before,
    LEAD(_period) OVER (PARTITION BY _entity ORDER BY _period) AS _next_period
  FROM present_cells
), rows_1 AS (
  SELECT
    _entity,
    _period,
    revenue,
    previous_revenue,
    ever_before
  FROM present_rows
  UNION ALL
  SELECT
    r._entity,
    r._period + 1 AS _period,
    0 AS revenue,
    r.revenue AS previous_revenue,
    r.ever_before OR r.revenue > 0 AS ever_before
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
), aggregates AS (
  SELECT
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
    _period
), period_values AS (
  SELECT
    p._period,
    p._period_index,
    p._label,
    1 AS _cells,
    CASE WHEN p._period_index >= 1 THEN COALESCE(a.starting_revenue, 0) END AS starting_revenue,
    CASE WHEN p._period_index >= 1 THEN COALESCE(a.expansion_revenue, 0) END AS expansion_revenue,
    CASE WHEN p._period_index >= 1 THEN COALESCE(a.contraction_revenue, 0) END AS contraction_revenue,
    CASE WHEN p._period_index >= 1 THEN COALESCE(a.churned_revenue, 0) END AS churned_revenue,
    CASE WHEN p._period_index >= 1 THEN COALESCE(a.new_revenue, 0) END AS new_revenue,
    CASE WHEN p._period_index >= 1 THEN COALESCE(a.reactivation_revenue, 0) END AS reactivation_revenue
  FROM periods AS p
  LEFT JOIN aggregates AS a
    ON a._period = p._period
), kpis_1 AS (
  SELECT
    *,
    (
      starting_revenue + expansion_revenue - contraction_revenue - churned_revenue
    ) / NULLIF(starting_revenue, 0) * 100 AS net_revenue_retention,
    (
      starting_revenue - contraction_revenue - churned_revenue
    ) / NULLIF(starting_revenue, 0) * 100 AS gross_revenue_retention,
    expansion_revenue / NULLIF(starting_revenue, 0) * 100 AS expansion_revenue_rate,
    LAG(expansion_revenue) OVER (ORDER BY _period) AS previous_expansion_revenue,
    (
      new_revenue + expansion_revenue + reactivation_revenue
    ) / NULLIF(contraction_revenue + churned_revenue, 0) AS quick_ratio
  FROM period_values
), kpis_2 AS (
  SELECT
    *,
    (
      expansion_revenue - previous_expansion_revenue
    ) / NULLIF(previous_expansion_revenue, 0) * 100 AS expansion_revenue_growth_rate
  FROM kpis_1
)
SELECT
  _label AS billing_month,
  CASE WHEN ISFINITE(starting_revenue) THEN starting_revenue END AS starting_revenue,
  CASE WHEN ISFINITE(expansion_revenue) THEN expansion_revenue END AS expansion_revenue,
  CASE WHEN ISFINITE(contraction_revenue) THEN contraction_revenue END AS contraction_revenue,
  CASE WHEN ISFINITE(churned_revenue) THEN churned_revenue END AS churned_revenue,
  CASE WHEN ISFINITE(new_revenue) THEN new_revenue END AS new_revenue,
  CASE WHEN ISFINITE(reactivation_revenue) THEN reactivation_revenue END AS reactivation_revenue,
  CASE WHEN ISFINITE(net_revenue_retention) THEN net_revenue_retention END AS net_revenue_retention,
  CASE WHEN ISFINITE(gross_revenue_retention) THEN gross_revenue_retention END AS gross_revenue_retention,
  CASE WHEN ISFINITE(expansion_revenue_rate) THEN expansion_revenue_rate END AS expansion_revenue_rate,
  CASE
    WHEN ISFINITE(expansion_revenue_growth_rate)
    THEN expansion_revenue_growth_rate
  END AS expansion_revenue_growth_rate,
  CASE WHEN ISFINITE(quick_ratio) THEN quick_ratio END AS quick_ratio
FROM kpis_2
WHERE
  _cells > 0
ORDER BY
  _period
