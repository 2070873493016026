WITH source AS (
  SELECT
    DATE_DIFF('DAY', CAST('1970-01-01' AS DATE), CAST(event_date AS DATE)) AS _base_period,
    plan,
    NULLIF(CAST(seats_used AS DOUBLE), CAST('NaN' AS DOUBLE)) AS seats_used,
    NULLIF(CAST(seats_bought AS DOUBLE), CAST('NaN' AS DOUBLE)) AS seats_bought,
    NULLIF(CAST(order_value AS DOUBLE), CAST('NaN' AS DOUBLE)) AS order_value,
    NULLIF(CAST(score AS DOUBLE), CAST('NaN' AS DOUBLE)) AS score
  FROM events
), bounds AS (
  SELECT
    MIN(_base_period) AS _first,
    MAX(_base_period) AS _last
  FROM source
), base_periods AS (
  SELECT
    s._base_period
  FROM bounds
  CROSS JOIN GENERATE_SERIES(_first, _last) AS s(_base_period)
), calendar AS (
  SELECT
    _base_period,
    CAST(FLOOR((
      _base_period + 3
    ) / 7.0) AS INT) + 1 AS _period
  FROM base_periods
), periods AS (
  SELECT
    _period,
    MAX(_base_period) AS _stock_base,
    _period - MIN(_period) OVER () AS _period_index,
    CAST(CAST(CAST('1970-01-01' AS DATE) + INTERVAL (_period * 7 - 10) DAY AS DATE) AS TIMESTAMP) AS _label
  FROM calendar
  GROUP BY
    _period
), cells AS (
  SELECT
    k._period,
    s.plan,
    CASE WHEN s._base_period = p._stock_base THEN s.seats_used END AS seats_used,
    CASE WHEN s._base_period = p._stock_base THEN s.seats_bought END AS seats_bought,
    s.order_value AS order_value,
    CASE WHEN s._base_period = p._stock_base THEN s.score END AS score
  FROM source AS s
  JOIN calendar AS k
    ON k._base_period = s._base_period
  JOIN periods AS p
    ON p._period = k._period
), aggregates AS (
  SELECT
    plan,
    _period,
    COUNT(*) AS _cells,
    SUM(seats_used) AS seat_utilization_sum,
    SUM(seats_bought) AS seat_utilization_sum_2,
    AVG(order_value) AS mean_order_value,
    MAX(score) AS score_spread_max,
    MIN(score) AS score_spread_min
  FROM cells
  GROUP BY
    plan,
    _period
), group_keys AS (
  SELECT DISTINCT
    plan
  FROM aggregates
), period_values AS (
  SELECT
    g.plan,
    p._period,
    p._period_index,
    p._label,
    COALESCE(a._cells, 0) AS _cells,
    COALESCE(a.seat_utilization_sum, 0) AS seat_utilization_sum,
    COALESCE(a.seat_utilization_sum_2, 0) AS seat_utilization_sum_2,
    a.mean_order_value AS mean_order_value,
    a.score_spread_max AS score_spread_max,
    a.score_spread_min AS score_spread_min
  FROM periods AS p
  CROSS JOIN group_keys AS g
  LEFT JOIN aggregates AS a
    ON a._period = p._period AND a.plan IS NOT DISTINCT FROM g.plan
), kpis_1 AS (
  SELECT
    *,
    seat_utilization_sum / NULLIF(seat_utilization_sum_2, 0) * 100 AS seat_utilization,
    score_spread_max - score_spread_min AS score_spread
  FROM period_values
), kpis_2 AS (
  SELECT
    *,
    LAG(CASE WHEN ISFINITE(seat_utilization) THEN seat_utilization END) OVER (PARTITION BY plan ORDER BY _period) AS previous_seat_utilization
  FROM kpis_1
), kpis_3 AS (
  SELECT
    *,
    CASE WHEN ISFINITE(seat_utilization) THEN seat_utilization END - previous_seat_utilization AS seat_utilization_change
  FROM kpis_2
)
SELECT
  _label AS event_date,
  plan,
  CASE WHEN ISFINITE(seat_utilization) THEN seat_utilization END AS seat_utilization,
  CASE WHEN ISFINITE(seat_utilization_change) THEN seat_utilization_change END AS seat_utilization_change,
  CASE WHEN ISFINITE(mean_order_value) THEN mean_order_value END AS mean_order_value,
  CASE WHEN ISFINITE(score_spread) THEN score_spread END AS score_spread
FROM kpis_3
WHERE
  _cells > 0
ORDER BY
  _period,
  plan
