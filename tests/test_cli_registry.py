"""The CLI's output (``costmodel.cli.registry``): one table or several, as a text table, CSV or
JSON; non-finite numbers never reach the output as numbers."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from costmodel.cli.registry import Result, render, text_table

A = Result([{"x": 1, "y": 0.5}, {"x": 2, "y": float("nan")}], title="First table", name="a")
B = Result([{"x": 3, "z": "text"}], title="Second (B) table")


def test_one_table_as_json_is_a_list():
    assert json.loads(render(A, "json")) == [{"x": 1, "y": 0.5}, {"x": 2, "y": None}]


def test_several_tables_as_one_json_object():
    data = json.loads(render([A, B], "json"))
    # keys: the name given, else the title in snake_case
    assert data == {"a": [{"x": 1, "y": 0.5}, {"x": 2, "y": None}],
                    "second_b_table": [{"x": 3, "z": "text"}]}


def test_two_tables_of_one_name_stay_apart():
    data = json.loads(render([A, A], "json"))
    assert list(data) == ["a", "a_"]


def test_several_tables_as_one_csv_with_a_table_column():
    rows = list(csv.DictReader(io.StringIO(render([A, B], "csv"))))
    assert [list(r.values()) for r in rows] == [["a", "1", "0.5", ""], ["a", "2", "", ""],
                                                ["second_b_table", "3", "", "text"]]
    assert list(rows[0]) == ["table", "x", "y", "z"]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), np.float64("nan"),
                                   np.inf])
def test_non_finite_values_are_null_dash_or_empty(value):
    r = Result([{"v": value, "w": 1}])
    assert json.loads(render(r, "json")) == [{"v": None, "w": 1}]
    assert render(r, "csv").splitlines()[1] == ",1"
    assert text_table(r.rows, ["v", "w"]).splitlines()[2].split() == ["-", "1"]


def test_numpy_scalars_become_plain_numbers():
    r = Result([{"i": np.int64(2**53), "f": np.float32(0.5), "b": np.bool_(True)}])
    assert json.loads(render(r, "json")) == [{"i": 2**53, "f": 0.5, "b": True}]


def test_text_table_aligns_numbers_right_and_text_left():
    lines = text_table([{"name": "a", "n": 5}, {"name": "bbb", "n": 12345}], ["name", "n"])
    assert lines.splitlines() == ["name      n", "----  -----", "a         5",
                                  "bbb   12345"]


def test_floats_in_a_table_have_six_significant_digits():
    assert text_table([{"x": 2 / 3}], ["x"]).splitlines()[-1] == "0.666667"


def test_notes_only_in_the_table_format():
    r = Result([{"x": 1}], title="T", notes=["how it was computed"])
    assert "how it was computed" in render(r, "table")
    assert "how it was computed" not in render(r, "json") + render(r, "csv")


def test_no_table_renders_nothing():
    assert render([], "json") == ""
