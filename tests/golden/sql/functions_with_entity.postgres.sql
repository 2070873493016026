WITH source AS (
  SELECT
    account AS _entity,
    (
      CAST(SUBSTRING(CAST(quarter AS VARCHAR) FROM 1 FOR 4) AS INT) - 1970
    ) * 4 + CAST(SUBSTRING(CAST(quarter AS VARCHAR) FROM 6 FOR 1) AS INT) - 1 AS _base_period,
    region,
    plan,
    NULLIF(CAST(arr AS DOUBLE PRECISION), CAST('NaN' AS DOUBLE PRECISION)) AS revenue,
    NULLIF(CAST(discount AS DOUBLE PRECISION), CAST('NaN' AS DOUBLE PRECISION)) AS discount,
    NULLIF(CAST(score AS DOUBLE PRECISION), CAST('NaN' AS DOUBLE PRECISION)) AS score,
    NULLIF(CAST(plan_price AS DOUBLE PRECISION), CAST('NaN' AS DOUBLE PRECISION)) AS plan_price,
    NULLIF(CAST(seats_used AS DOUBLE PRECISION), CAST('NaN' AS DOUBLE PRECISION)) AS seats_used,
    loaded_at AS _row_order
  FROM warehouse.accounts
  WHERE
    NOT account IS NULL
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
    discount AS discount,
    score AS score,
    plan_price AS plan_price,
    seats_used AS seats_used,
    region,
    plan
  FROM (
    SELECT
      _entity,
      _base_period,
      SUM(revenue) AS revenue,
      COUNT(revenue) AS _revenue_rows,
      SUM(ABS(revenue)) * (
        COUNT(revenue) + 2
      ) * 2.220446049250313e-16 AS _revenue_error,
      AVG(discount) AS discount,
      (
        ARRAY_AGG(score ORDER BY CASE WHEN NOT score IS NULL THEN _row_order END DESC NULLS LAST) FILTER(WHERE
          NOT CASE WHEN NOT score IS NULL THEN _row_order END IS NULL)
      )[1] AS score,
      MAX(plan_price) AS plan_price,
      MAX(seats_used) AS seats_used,
      MAX(region) AS region,
      MAX(plan) AS plan
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
    CAST(FLOOR(CAST(_base_period AS DOUBLE PRECISION) / 4.0) AS INT) AS _period
  FROM base_periods
), periods AS (
  SELECT
    _period,
    MAX(_base_period) AS _stock_base,
    _period - MIN(_period) OVER () AS _period_index,
    SUBSTRING(CAST(CAST(CAST('1970-01-01' AS DATE) + (
      INTERVAL '1 MONTH' * _period * 12
    ) AS DATE) AS VARCHAR) FROM 1 FOR 4) AS _label
  FROM calendar
  GROUP BY
    _period
), period_cells AS (
  SELECT
    c._entity,
    k._period,
    MAX(CASE WHEN c._base_period = p._stock_base THEN c.revenue END) AS revenue,
    MAX(CASE WHEN c._base_period = p._stock_base THEN c.discount END) AS discount,
    MAX(CASE WHEN c._base_period = p._stock_base THEN c.score END) AS score,
    MAX(CASE WHEN c._base_period = p._stock_base THEN c.plan_price END) AS plan_price,
    MAX(CASE WHEN c._base_period = p._stock_base THEN c.seats_used END) AS seats_used,
    (
      ARRAY_AGG(c.region ORDER BY c._base_period DESC NULLS LAST) FILTER(WHERE
        NOT c._base_period IS NULL)
    )[1] AS region,
    (
      ARRAY_AGG(c.plan ORDER BY c._base_period DESC NULLS LAST) FILTER(WHERE
        NOT c._base_period IS NULL)
    )[1] AS plan,
    MAX(CASE WHEN COALESCE(c.revenue, 0) > 0 THEN 1 ELSE 0 END) AS held_in_period
  FROM cells AS c
  JOIN calendar AS k
    ON k._base_period = c._base_period
  JOIN periods AS p
    ON p._period = k._period
  GROUP BY
    c._entity,
    k._period
), entities AS (
  SELECT
    _entity,
    (
      ARRAY_AGG(region ORDER BY _base_period ASC) FILTER(WHERE
        NOT _base_period IS NULL)
    )[1] AS _first_region,
    (
      ARRAY_AGG(plan ORDER BY _base_period ASC) FILTER(WHERE
        NOT _base_period IS NULL)
    )[1] AS _first_plan
  FROM cells
  GROUP BY
    _entity
), grid AS (
  /* dense: every entity in every period; previous() of previous() looks back more than one period */
  SELECT
    e._entity,
    p._period,
    COALESCE(c.revenue, 0) AS revenue,
    c.discount AS discount,
    c.score AS score,
    c.plan_price AS plan_price,
    c.seats_used AS seats_used,
    c.region AS _row_region,
    e._first_region,
    c.plan AS _row_plan,
    e._first_plan,
    NOT c._entity IS NULL AS _present,
    COALESCE(c.held_in_period, 0) AS held_in_period
  FROM entities AS e
  CROSS JOIN periods AS p
  LEFT JOIN period_cells AS c
    ON c._entity = e._entity AND c._period = p._period
), rows_1 AS (
  SELECT
    *,
    COUNT(CASE WHEN _present THEN 1 END) OVER (
      PARTITION BY _entity
      ORDER BY _period
      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    ) AS _run,
    LAG(revenue) OVER (PARTITION BY _entity ORDER BY _period) AS previous_revenue,
    COALESCE(
      MAX(CASE WHEN held_in_period = 1 THEN 1 ELSE 0 END) OVER (
        PARTITION BY _entity
        ORDER BY _period
        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
      ),
      0
    ) = 1 AS ever_before
  FROM grid
), rows_2 AS (
  SELECT
    *,
    CASE
      WHEN _run = 0
      THEN _first_region
      ELSE MAX(_row_region) OVER (PARTITION BY _entity, _run)
    END AS region,
    CASE
      WHEN _run = 0
      THEN _first_plan
      ELSE MAX(_row_plan) OVER (PARTITION BY _entity, _run)
    END AS plan,
    LAG(previous_revenue) OVER (PARTITION BY _entity ORDER BY _period) AS previous_previous_revenue,
    revenue - 100 AS value
  FROM rows_1
), aggregates AS (
  SELECT
    region,
    plan,
    _period,
    COUNT(*) AS _cells,
    SUM(
      CASE
        WHEN revenue > 100
        THEN ABS(revenue - previous_revenue)
        ELSE GREATEST(revenue, previous_revenue) - LEAST(revenue, 50)
      END
    ) AS revenue_swing,
    CAST(COUNT(CASE WHEN NOT COALESCE(previous_revenue <> revenue, FALSE) THEN revenue END) AS DOUBLE PRECISION) AS steady_customers,
    SUM(COALESCE(previous_revenue, 0) + revenue) AS revenue_with_carry,
    SUM(
      CASE
        WHEN previous_previous_revenue > 0 OR revenue >= 500
        THEN previous_previous_revenue
      END
    ) AS two_back_revenue,
    SUM(
      CASE
        WHEN revenue > 0
        THEN CASE WHEN value < 0 AND 0.5 <> FLOOR(0.5) THEN NULL ELSE POWER(value, 0.5) END
      END
    ) AS discount_power_sum,
    SUM(CASE WHEN discount = 0 THEN NULL ELSE POWER(discount, -1) END) AS discount_power_sum_2,
    SUM(POWER(revenue, 2)) AS discount_power_sum_3,
    CAST(COUNT(CASE WHEN revenue = 0 AND ever_before THEN revenue END) AS DOUBLE PRECISION) AS lost_customers,
    AVG(discount) AS mean_discount_or_zero_mean,
    MIN(
      CASE WHEN discount > 0.1 AND NOT COALESCE(discount > 0.5, FALSE) THEN discount END
    ) AS mean_discount_or_zero_min,
    SUM(
      CASE
        WHEN previous_revenue > 0 AND revenue > previous_revenue
        THEN revenue - previous_revenue
      END
    ) AS expansion_revenue,
    CAST(COUNT(CASE WHEN score >= 9 THEN score END) AS DOUBLE PRECISION) AS promoter_score_count,
    CAST(COUNT(CASE WHEN score <= 6 THEN score END) AS DOUBLE PRECISION) AS promoter_score_count_2,
    CAST(COUNT(score) AS DOUBLE PRECISION) AS promoter_score_count_3,
    CAST(COUNT(DISTINCT CASE WHEN revenue > 0 THEN plan_price END) AS DOUBLE PRECISION) AS price_points,
    AVG(LEAST(seats_used, 20)) AS capped_usage_mean,
    SUM(GREATEST(discount, 0.1, CAST(seats_used AS DOUBLE PRECISION) / 100)) AS capped_usage_sum
  FROM rows_2
  GROUP BY
    region,
    plan,
    _period
), group_keys AS (
  SELECT DISTINCT
    region,
    plan
  FROM aggregates
), period_values AS (
  SELECT
    g.region,
    g.plan,
    p._period,
    p._period_index,
    p._label,
    COALESCE(a._cells, 0) AS _cells,
    CASE WHEN p._period_index >= 1 THEN COALESCE(a.revenue_swing, 0) END AS revenue_swing,
    CASE WHEN p._period_index >= 1 THEN COALESCE(a.steady_customers, 0) END AS steady_customers,
    COALESCE(a.revenue_with_carry, 0) AS revenue_with_carry,
    CASE WHEN p._period_index >= 2 THEN COALESCE(a.two_back_revenue, 0) END AS two_back_revenue,
    COALESCE(a.discount_power_sum, 0) AS discount_power_sum,
    COALESCE(a.discount_power_sum_2, 0) AS discount_power_sum_2,
    COALESCE(a.discount_power_sum_3, 0) AS discount_power_sum_3,
    COALESCE(a.lost_customers, 0) AS lost_customers,
    a.mean_discount_or_zero_mean AS mean_discount_or_zero_mean,
    a.mean_discount_or_zero_min AS mean_discount_or_zero_min,
    CASE WHEN p._period_index >= 1 THEN COALESCE(a.expansion_revenue, 0) END AS expansion_revenue,
    COALESCE(a.promoter_score_count, 0) AS promoter_score_count,
    COALESCE(a.promoter_score_count_2, 0) AS promoter_score_count_2,
    COALESCE(a.promoter_score_count_3, 0) AS promoter_score_count_3,
    COALESCE(a.price_points, 0) AS price_points,
    a.capped_usage_mean AS capped_usage_mean,
    COALESCE(a.capped_usage_sum, 0) AS capped_usage_sum
  FROM periods AS p
  CROSS JOIN group_keys AS g
  LEFT JOIN aggregates AS a
    ON a._period = p._period
    AND a.region IS NOT DISTINCT FROM g.region
    AND a.plan IS NOT DISTINCT FROM g.plan
), kpis_1 AS (
  SELECT
    *,
    discount_power_sum + discount_power_sum_2 + CAST(discount_power_sum_3 AS DOUBLE PRECISION) / 1000 AS discount_power,
    COALESCE(mean_discount_or_zero_mean, 0) - mean_discount_or_zero_min AS mean_discount_or_zero,
    LAG(expansion_revenue) OVER (PARTITION BY region, plan ORDER BY _period) AS previous_expansion_revenue,
    CAST((
      promoter_score_count - promoter_score_count_2
    ) AS DOUBLE PRECISION) / NULLIF(promoter_score_count_3, 0) * 100 AS promoter_score,
    capped_usage_mean + capped_usage_sum AS capped_usage
  FROM period_values
), kpis_2 AS (
  SELECT
    *,
    LAG(previous_expansion_revenue) OVER (PARTITION BY region, plan ORDER BY _period) AS previous_previous_expansion_revenue
  FROM kpis_1
), row_checks AS (
  /* rows the KPIs cannot be computed on: the final SELECT fails with this */
  SELECT
    (
      SELECT
        MIN(_text)
      FROM (
        SELECT
          'datapoint ''score'' keeps each entity''s latest row in a period (rows: last), but ' || 'entity ''' || CAST(_entity AS VARCHAR) || '''' || ' in ' || (
            SUBSTRING(CAST(CAST(CAST('1970-01-01' AS DATE) + (
              INTERVAL '1 MONTH' * _base_period * 3
            ) AS DATE) AS VARCHAR) FROM 1 FOR 4) || 'Q' || CAST(EXTRACT(QUARTER FROM CAST(CAST('1970-01-01' AS DATE) + (
              INTERVAL '1 MONTH' * _base_period * 3
            ) AS DATE)) AS VARCHAR)
          ) || ' has several rows with different values' || ' and the same value of the column that orders the rows: make it tell them apart' AS _text
        FROM (
          SELECT
            _entity,
            _base_period,
            score
          FROM (
            SELECT
              _entity,
              _base_period,
              score,
              _row_order,
              MAX(_row_order) OVER (PARTITION BY _entity, _base_period) AS _top
            FROM source
            WHERE
              NOT score IS NULL
          ) AS r
          WHERE
            _row_order = _top
        ) AS c
        GROUP BY
          _entity,
          _base_period
        HAVING
          MIN(score) <> MAX(score)
      ) AS u
    ) AS _row_problem
)
SELECT
  _label AS quarter,
  region,
  plan,
  CASE
    WHEN ABS(revenue_swing) < CAST('Infinity' AS DOUBLE PRECISION)
    THEN revenue_swing
  END AS revenue_swing,
  CASE
    WHEN ABS(steady_customers) < CAST('Infinity' AS DOUBLE PRECISION)
    THEN steady_customers
  END AS steady_customers,
  CASE
    WHEN ABS(revenue_with_carry) < CAST('Infinity' AS DOUBLE PRECISION)
    THEN revenue_with_carry
  END AS revenue_with_carry,
  CASE
    WHEN ABS(two_back_revenue) < CAST('Infinity' AS DOUBLE PRECISION)
    THEN two_back_revenue
  END AS two_back_revenue,
  CASE
    WHEN ABS(discount_power) < CAST('Infinity' AS DOUBLE PRECISION)
    THEN discount_power
  END AS discount_power,
  CASE
    WHEN ABS(lost_customers) < CAST('Infinity' AS DOUBLE PRECISION)
    THEN lost_customers
  END AS lost_customers,
  CASE
    WHEN ABS(mean_discount_or_zero) < CAST('Infinity' AS DOUBLE PRECISION)
    THEN mean_discount_or_zero
  END AS mean_discount_or_zero,
  CASE
    WHEN ABS(previous_previous_expansion_revenue) < CAST('Infinity' AS DOUBLE PRECISION)
    THEN previous_previous_expansion_revenue
  END AS expansion_two_back,
  CASE
    WHEN ABS(promoter_score) < CAST('Infinity' AS DOUBLE PRECISION)
    THEN promoter_score
  END AS promoter_score,
  CASE
    WHEN ABS(price_points) < CAST('Infinity' AS DOUBLE PRECISION)
    THEN price_points
  END AS price_points,
  CASE
    WHEN ABS(capped_usage) < CAST('Infinity' AS DOUBLE PRECISION)
    THEN capped_usage
  END AS capped_usage,
  CASE WHEN ABS(100) < CAST('Infinity' AS DOUBLE PRECISION) THEN 100 END AS hundred
FROM kpis_2
CROSS JOIN row_checks
WHERE
  _cells > 0
  AND CASE WHEN NOT _row_problem IS NULL THEN CAST(_row_problem AS INT) END IS NULL
ORDER BY
  _period,
  region,
  plan
