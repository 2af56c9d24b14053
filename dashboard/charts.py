"""Altair chart builders: frames in, charts out. Pure: no Streamlit, no store, no metric.

Every builder takes the frame a view (`views`) or the analysis produced and only encodes it;
the values drawn are exactly the frame's, so tests can compare chart data with stored results.
"""

from __future__ import annotations

import altair as alt
import polars as pl

ACCURACY_AXIS = alt.Axis(format="%", title="accuracy")
_TOOLTIP_ACC = alt.Tooltip("accuracy:Q", format=".1%")
_SCHEME = "tableau10"
METHOD_DASH = {"naive": [2, 2], "weighted": [1, 0], "majority": [6, 3], "pass": [1, 4]}
"""Line style per selection method (solid = weighted, the reference's usual pick)."""


def _strategy_color(field: str = "config") -> alt.Color:
    return alt.Color(f"{field}:N", title="strategy", scale=alt.Scale(scheme=_SCHEME))


def _method_dash(methods: list[str]) -> alt.StrokeDash:
    shown = [m for m in METHOD_DASH if m in set(methods)]
    return alt.StrokeDash("method:N", title="selection", scale=alt.Scale(domain=shown, range=[METHOD_DASH[m] for m in shown]))


def _budget_axis(values: list[int]) -> alt.X:
    return alt.X(
        "n:Q",
        scale=alt.Scale(type="log", base=2),
        axis=alt.Axis(values=sorted(set(values)), title="generation budget n (log₂)", format="d", labelAngle=0),
    )


def _flops_axis(field: str = "flops_per_problem") -> alt.X:
    return alt.X(f"{field}:Q", scale=alt.Scale(type="log"), axis=alt.Axis(title="FLOPs per problem (log)", format=".0e", labelAngle=0))


def accuracy_vs_budget(lines: pl.DataFrame, *, x: str = "n", total_width: int = 600, height: int = 260) -> alt.FacetChart:
    """One line per option (colour = strategy configuration, dash = selection method), a 95%
    band where the analysis gave one, one panel per model (a row per dataset); x is the
    budget n (log₂) or FLOPs per problem (log). The panels share `total_width` pixels."""
    width = max(200, total_width // max(1, lines["model"].n_unique()))
    cols = ["model", "dataset", "option", "config", "method", "n", "accuracy", "ci_low", "ci_high", "n_seeds", "flops_per_problem"]
    data = lines.select(cols)
    if x == "flops":
        data = data.filter(pl.col("flops_per_problem").is_not_null() & (pl.col("flops_per_problem") > 0))
    x_enc = _budget_axis(data["n"].to_list()) if x == "n" else _flops_axis()
    color = _strategy_color()
    tooltip = [
        "model:N", "dataset:N", "option:N", "n:Q", _TOOLTIP_ACC,
        alt.Tooltip("ci_low:Q", format=".1%", title="95% CI low"), alt.Tooltip("ci_high:Q", format=".1%", title="95% CI high"),
        "n_seeds:Q", alt.Tooltip("flops_per_problem:Q", format=".3g", title="FLOPs/problem"),
    ]  # fmt: skip
    base = alt.Chart().encode(x=x_enc, detail="option:N")
    band = (
        base.mark_area(opacity=0.12)
        .encode(color=color, y=alt.Y("ci_low:Q", axis=ACCURACY_AXIS), y2="ci_high:Q")
        .transform_filter("isValid(datum.ci_low) && isValid(datum.ci_high)")
    )
    y = alt.Y("accuracy:Q", axis=ACCURACY_AXIS, scale=alt.Scale(domain=[0, 1]))
    line = base.mark_line().encode(color=color, y=y, strokeDash=_method_dash(data["method"].to_list()))
    dots = base.mark_circle(size=36, opacity=1).encode(color=color, y=y, tooltip=tooltip)
    return (
        alt.layer(line, dots, band, data=data)
        .properties(width=width, height=height)
        .facet(column=alt.Column("model:N", title=None), row=alt.Row("dataset:N", title=None))
        .resolve_scale(x="independent")
    )


def accuracy_by_bin(bin_acc: pl.DataFrame, *, total_width: int = 520, height: int = 170) -> alt.FacetChart:
    """Accuracy vs n per option, one panel per difficulty bin (1 = easiest), a row per model;
    the panels share `total_width` pixels."""
    width = max(90, total_width // max(1, bin_acc["bin"].n_unique()))
    data = bin_acc.select("model", "dataset", "bin", "option", "config", "method", "n", "accuracy", "n_problems")
    base = alt.Chart().encode(
        x=_budget_axis(data["n"].to_list()),
        y=alt.Y("accuracy:Q", axis=ACCURACY_AXIS, scale=alt.Scale(domain=[0, 1])),
        color=_strategy_color(),
        detail="option:N",
    )
    return (
        alt.layer(
            base.mark_line().encode(strokeDash=_method_dash(data["method"].to_list())),
            base.mark_circle(size=30, opacity=1).encode(
                tooltip=["model:N", "dataset:N", "bin:O", "option:N", "n:Q", _TOOLTIP_ACC, "n_problems:Q"]
            ),
            data=data,
        )
        .properties(width=width, height=height)
        .facet(column=alt.Column("bin:O", title="difficulty bin (1 = easiest)"), row=alt.Row("model:N", title=None))
    )


def compute_optimal_curve(frontier: pl.DataFrame, *, width: int = 420, height: int = 280) -> alt.Chart:
    """Compute-optimal (strategy chosen per bin) vs the best single strategy, over all bins,
    against the budget n; one colour per model, dashed = best single."""
    overall = frontier.filter(pl.col("bin") == "all")
    long = pl.concat(
        [
            overall.select("model", "dataset", pl.col("budget").alias("n"), pl.col("optimal_accuracy").alias("accuracy"),
                           pl.lit("compute-optimal").alias("curve")),
            overall.select("model", "dataset", pl.col("budget").alias("n"), pl.col("single_accuracy").alias("accuracy"),
                           pl.lit("best single strategy").alias("curve")),
        ],
        how="vertical",
    ).filter(pl.col("accuracy").is_not_null())  # fmt: skip
    return (
        alt.Chart(long)
        .mark_line(point=True)
        .encode(
            x=_budget_axis(long["n"].to_list()),
            y=alt.Y("accuracy:Q", axis=ACCURACY_AXIS, scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("model:N", scale=alt.Scale(scheme=_SCHEME)),
            strokeDash=alt.StrokeDash("curve:N", title=None, sort=["compute-optimal", "best single strategy"]),
            tooltip=["model:N", "dataset:N", "curve:N", "n:Q", _TOOLTIP_ACC],
        )
        .properties(width=width, height=height, title="compute-optimal vs best single strategy (two-fold)")
    )


def model_comparison(models: pl.DataFrame, comparison: pl.DataFrame, dataset: str, *, width: int = 560, height: int = 320) -> alt.LayerChart:
    """Accuracy vs FLOPs per problem for every model on `dataset`: every option × n as a faint
    point, each model's upper envelope as a step line, the large model's cheapest accuracy as
    a dotted rule and the crossover (small model ahead at matched compute) as a red rule."""
    pts = models.filter(pl.col("dataset") == dataset).select(
        "model", "option", "n", "flops_per_problem", "accuracy", "envelope_accuracy", "on_frontier"
    )
    x = _flops_axis()
    y = alt.Y("accuracy:Q", axis=ACCURACY_AXIS, scale=alt.Scale(domain=[0, 1]))
    tooltip = ["model:N", "option:N", "n:Q", alt.Tooltip("flops_per_problem:Q", format=".3g", title="FLOPs/problem"), _TOOLTIP_ACC]
    model_color = alt.Color("model:N", title="model", scale=alt.Scale(scheme=_SCHEME))
    points = alt.Chart(pts).mark_point(opacity=0.35, filled=True).encode(x=x, y=y, color=model_color, tooltip=tooltip)
    envelope = (
        alt.Chart(pts.filter(pl.col("on_frontier")))
        .mark_line(interpolate="step-after", strokeWidth=2.5, point=True)
        .encode(x=x, y=y, color=model_color, tooltip=tooltip)
    )
    layers: list[alt.Chart] = [points, envelope]
    rows = comparison.filter(pl.col("dataset") == dataset)
    if rows.height:
        ref = rows.select(
            pl.col("large_model").alias("model"), pl.col("reference_accuracy").alias("accuracy"),
            pl.format("{} at n={}", pl.col("large_model"), pl.col("reference_n")).alias("label"),
        ).unique()  # fmt: skip
        layers.append(
            alt.Chart(ref).mark_rule(strokeDash=[2, 3], color="gray").encode(y="accuracy:Q", tooltip=["label:N", _TOOLTIP_ACC])
        )
        layers.append(
            alt.Chart(ref)
            .mark_text(align="left", baseline="bottom", x=4, dy=-2, color="gray")
            .encode(y="accuracy:Q", text="label:N")
        )
        cross = rows.filter(pl.col("overtakes_at_flops").is_not_null()).select(
            pl.col("overtakes_at_flops").alias("flops_per_problem"),
            pl.format("{} overtakes {}", pl.col("small_model"), pl.col("large_model")).alias("label"),
            pl.col("overtakes_accuracy").alias("accuracy"),
        )
        if cross.height:
            rule = alt.Chart(cross).mark_rule(color="#d62728", strokeWidth=2).encode(
                x="flops_per_problem:Q", tooltip=["label:N", alt.Tooltip("flops_per_problem:Q", format=".3g"), _TOOLTIP_ACC]
            )
            text = alt.Chart(cross).mark_text(align="left", dx=4, dy=-6, color="#d62728").encode(
                x="flops_per_problem:Q", y="accuracy:Q", text="label:N"
            )
            layers += [rule, text]
    return alt.layer(*layers).properties(width=width, height=height, title=f"models at matched compute · {dataset}")


def gain_heatmap(frontier: pl.DataFrame, *, width: int = 420, height: int = 220) -> alt.Chart:
    """Per difficulty bin × budget: gain of the per-bin choice over the best single strategy
    (its 95% interval in the tooltip)."""
    data = frontier.filter(pl.col("bin") != "all").select(
        "model", "dataset", "bin", pl.col("budget").cast(pl.String).alias("budget"), "gain", "gain_ci_low", "gain_ci_high",
        "optimal_accuracy", "single_accuracy", pl.coalesce("optimal_chosen_on_0", "optimal_chosen_on_1").alias("chosen"),
    )  # fmt: skip
    order = [str(b) for b in sorted(set(frontier.filter(pl.col("bin") != "all")["budget"].to_list()))]
    base = alt.Chart(data).encode(
        x=alt.X("budget:O", sort=order, title="budget n", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("bin:O", title="difficulty bin (1 = easiest)"),
    )
    cells = base.mark_rect().encode(
        color=alt.Color("gain:Q", scale=alt.Scale(scheme="redblue", domainMid=0), legend=alt.Legend(format="+.0%")),
        tooltip=["model:N", "bin:O", "budget:O", "chosen:N", alt.Tooltip("optimal_accuracy:Q", format=".1%"),
                 alt.Tooltip("single_accuracy:Q", format=".1%"), alt.Tooltip("gain:Q", format="+.1%"),
                 alt.Tooltip("gain_ci_low:Q", format="+.1%", title="gain 95% CI low"),
                 alt.Tooltip("gain_ci_high:Q", format="+.1%", title="gain 95% CI high")],
    )  # fmt: skip
    labels = base.mark_text(fontSize=10).encode(text=alt.Text("optimal_accuracy:Q", format=".0%"))
    return alt.layer(cells, labels).properties(width=width, height=height)


def search_tree(points: pl.DataFrame, edges: pl.DataFrame, *, width: int = 720) -> alt.LayerChart:
    """The search tree left to right (x = depth): nodes coloured by step score, the selected
    candidate's path drawn thick in black; hover shows a node's text, click selects it
    (selection parameter `node`)."""
    rows = max(1, int(points["y"].max() or 0) + 1) if points.height else 1
    height = max(220, min(24 * rows, 1600))
    x = alt.X("depth:Q", axis=alt.Axis(title="depth (step)", tickMinStep=1), scale=alt.Scale(nice=False, padding=12))
    y = alt.Y("y:Q", axis=None, scale=alt.Scale(padding=8, reverse=True))
    edge_layer = (
        alt.Chart(edges)
        .mark_rule()
        .encode(
            x=alt.X("x:Q", axis=alt.Axis(title="depth (step)", tickMinStep=1), scale=alt.Scale(nice=False, padding=12)),
            y=alt.Y("y:Q", axis=None, scale=alt.Scale(padding=8, reverse=True)),
            x2="x2:Q",
            y2="y2:Q",
            color=alt.condition("datum.on_path", alt.value("black"), alt.value("#c8c8c8")),
            strokeWidth=alt.condition("datum.on_path", alt.value(3), alt.value(1)),
        )
    )
    pick = alt.selection_point(name="node", fields=["node_id"], on="click")
    node_layer = (
        alt.Chart(points)
        .mark_circle(size=90, stroke="black")
        .encode(
            x=x,
            y=y,
            color=alt.Color("score:Q", scale=alt.Scale(scheme="redyellowgreen", domain=[0, 1]), title="step score"),
            strokeWidth=alt.condition("datum.on_path", alt.value(2.5), alt.value(0)),
            opacity=alt.condition(pick, alt.value(1.0), alt.value(0.55)),
            tooltip=[
                "node_id:Q", "depth:Q", alt.Tooltip("score:Q", format=".3f"), "state:N", "kind:N",
                "n_generated_tokens:Q", "finish_reason:N", alt.Tooltip("text_preview:N", title="text"),
            ],
        )  # fmt: skip
        .add_params(pick)
    )
    return alt.layer(edge_layer, node_layer).properties(width=width, height=height)
