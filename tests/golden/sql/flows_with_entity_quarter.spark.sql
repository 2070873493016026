WITH source AS (
  SELECT
    customer AS _entity,
    (
      CAST(SUBSTRING(CAST(order_month AS STRING), 1, 4) AS INT) - 1970
    ) * 12 + CAST(SUBSTRING(CAST(order_month AS STRING), 6, 2) AS INT) - 1 AS _base_period,
    NULLIF(CAST(orders AS DOUBLE), CAST('NaN' AS DOUBLE)) AS orders
  FROM shop.orders
  WHERE
    NOT customer IS NULL
), cells AS (
  /* Sums of several rows are rounded to the finest power of ten above their floating-point error (0.1 + 0.2 gives 0.3, not 0.30000000000000004), as kpi eval rounds them, so that both give the same numbers; a single row is kept as it is */
  SELECT
    _entity,
    _base_period,
    CASE
      WHEN _orders_rows > 1 AND _orders_error < 1 AND _orders_error >= 1e-22
      THEN FLOOR(orders * POWER(10, FLOOR(-LN(_orders_error) * 0.4342944819032518e0)) + 0.5) / POWER(10, FLOOR(-LN(_orders_error) * 0.4342944819032518e0))
      ELSE orders
    END AS orders
  FROM (
    SELECT
      _entity,
      _base_period,
      SUM(orders) AS orders,
      COUNT(orders) AS _orders_rows,
      SUM(ABS(orders)) * (
        COUNT(orders) + 2
      ) * 2.220446049250313e-16 AS _orders_error
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
    EXPLODE(SEQUENCE(_first, _last)) AS _base_period
  FROM bounds
), calendar AS (
  SELECT
    _base_period,
    CAST(FLOOR(_base_period / 3.0) AS INT) AS _period
  FROM base_periods
), periods AS (
  SELECT
    _period,
    MAX(_base_period) AS _stock_base,
    _period - MIN(_period) OVER () AS _period_index,
    SUBSTRING(
      CAST(CAST(ADD_MONTHS(CAST('1970-01-01' AS DATE), CAST(_period * 3 AS INT)) AS DATE) AS STRING),
      1,
      4
    ) || 'Q' || CAST(EXTRACT(QUARTER FROM CAST(ADD_MONTHS(CAST('1970-01-01' AS DATE), CAST(_period * 3 AS INT)) AS DATE)) AS STRING) AS _label
  FROM calendar
  GROUP BY
    _period
), period_cells AS (
  SELECT
    c._entity,
    k._period,
    CASE
      WHEN COUNT(NULLIF(c.orders, 0)) > 1
      AND SUM(ABS(c.orders)) * (
        COUNT(NULLIF(c.orders, 0)) + 2
      ) * 2.220446049250313e-16 < 1
      AND SUM(ABS(c.orders)) * (
        COUNT(NULLIF(c.orders, 0)) + 2
      ) * 2.220446049250313e-16 >= 1e-22
      THEN FLOOR(
        SUM(c.orders) * POWER(
          10,
          FLOOR(
            -LN(
              SUM(ABS(c.orders)) * (
                COUNT(NULLIF(c.orders, 0)) + 2
              ) * 2.220446049250313e-16
            ) * 0.4342944819032518e0
          )
        ) + 0.5
      ) / POWER(
        10,
        FLOOR(
          -LN(
            SUM(ABS(c.orders)) * (
              COUNT(NULLIF(c.orders, 0)) + 2
            ) * 2.220446049250313e-16
          ) * 0.4342944819032518e0
        )
      )
      ELSE SUM(c.orders)
    END AS orders
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
    COALESCE(c.orders, 0) AS orders
  FROM period_cells AS c
), present_rows AS (
  /* sparse: rows and the period after each; cells without rows (other than the period after a row) change none of these numbers */
  SELECT
    *
  FROM present_cells
), aggregates AS (
  SELECT
    _period,
    SUM(orders) AS order_count,
    CAST(COUNT(CASE WHEN orders > 0 THEN orders END) AS DOUBLE) AS orders_per_customer_count
  FROM present_rows
  GROUP BY
    _period
), period_values AS (
  SELECT
    p._period,
    p._period_index,
    p._label,
    1 AS _cells,
    COALESCE(a.order_count, 0) AS order_count,
    COALESCE(a.orders_per_customer_count, 0) AS orders_per_customer_count
  FROM periods AS p
  LEFT JOIN aggregates AS a
    ON a._period = p._period
), kpis_1 AS (
  SELECT
    *,
    order_count / NULLIF(orders_per_customer_count, 0) AS orders_per_customer
  FROM period_values
)
SELECT
  _label AS order_month,
  CASE WHEN ABS(order_count) < CAST('Infinity' AS DOUBLE) THEN order_count END AS order_count,
  CASE
    WHEN ABS(orders_per_customer) < CAST('Infinity' AS DOUBLE)
    THEN orders_per_customer
  END AS orders_per_customer
FROM kpis_1
WHERE
  _cells > 0
ORDER BY
  _period
