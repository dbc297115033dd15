"""Importers (sim/data_import.py) on small files in the venues' own layouts, written here into
temporary directories: Binance public-data archives (daily/monthly, zip/CSV, with and without a
header), Bybit klines and funding, Tardis derivative_ticker, any CSV with a column mapping; the
one-line errors naming file and line; ``perpsim data import`` end to end."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import numpy as np
import pytest

from perpsim.cli import main
from perpsim.sim import data_import as di
from perpsim.sim.errors import ScenarioError
from perpsim.sim.scenario import load_scenario

T0 = 1_655_078_400_000  # 2022-06-13T00:00:00Z
MIN = 60_000
KLINE_HEADER = ("open_time,open,high,low,close,volume,close_time,quote_volume,count,"
                "taker_buy_volume,taker_buy_quote_volume,ignore")


def kline_rows(closes: list[float], start_ms: int = T0, step: int = MIN,
               wick: float = 5.0) -> list[str]:
    """Binance COIN-M kline rows (12 columns): each bar opens at the previous close."""
    rows, prev = [], closes[0]
    for i, close in enumerate(closes):
        t = start_ms + i * step
        hi, lo = max(prev, close) + wick, min(prev, close) - wick
        rows.append(f"{t},{prev},{hi},{lo},{close},100,{t + step - 1},1.0,10,50,0.5,0")
        prev = close
    return rows


def write(path: Path, lines: list[str], *, header: str | None = None,
          archive: str | None = None) -> Path:
    text = "\n".join(([header] if header else []) + lines) + "\n"
    if archive == "zip":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr(path.with_suffix(".csv").name, text)
    elif archive == "gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


@pytest.fixture
def binance_day(tmp_path: Path) -> dict[str, Path]:
    """One COIN-M day as data.binance.vision ships it: zips without header (older style)."""
    last = [20_000.0, 19_900.0, 19_950.0, 19_800.0]
    index = [20_010.0, 19_905.0, 19_940.0, 19_810.0]
    return {
        "last": write(tmp_path / "BTCUSD_PERP-1m-2022-06-13.zip", kline_rows(last),
                      archive="zip"),
        "index": write(tmp_path / "BTCUSD-indexPriceKlines-1m-2022-06-13.zip",
                       kline_rows(index), archive="zip"),
        "funding": write(tmp_path / "BTCUSD_PERP-fundingRate-2022-06.zip",
                         [f"{T0 + 3},8,0.00010000", f"{T0 + 8 * 3_600_000 + 4},8,-0.00002500"],
                         header="calc_time,funding_interval_hours,last_funding_rate",
                         archive="zip"),
    }


def test_binance_archives_become_index_perp_and_funding(binance_day: dict[str, Path]) -> None:
    data = di.import_binance(list(binance_day.values()))
    s = di.to_series(data)
    # Four rows per bar: open, extreme, extreme, close (a down bar shows its high first).
    assert s.times_ms[:8].tolist() == [T0 + k * 15_000 for k in range(8)]
    assert s.index[:4].tolist() == [20_010.0, 20_005.0, 20_015.0, 20_010.0]  # flat: low first
    assert s.index[4:8].tolist() == [20_010.0, 20_015.0, 19_900.0, 19_905.0]
    assert s.perp is not None
    assert s.perp[4:8].tolist() == [20_000.0, 20_005.0, 19_895.0, 19_900.0]
    assert s.funding_times_ms.tolist() == [T0, T0 + 8 * 3_600_000]  # snapped to the minute
    assert s.funding_rates.tolist() == [0.0001, -0.000025]
    assert data.files == 3


def test_with_and_without_header_and_csv_or_zip_agree(tmp_path: Path) -> None:
    closes = [30_000.0, 30_100.0, 29_950.0]
    plain = write(tmp_path / "BTCUSD_PERP-indexPriceKlines-1m-2022-06-13.csv",
                  kline_rows(closes))
    (tmp_path / "h").mkdir()
    headed = write(tmp_path / "h" / "BTCUSD_PERP-indexPriceKlines-1m-2022-06-13.zip",
                   kline_rows(closes), header=KLINE_HEADER, archive="zip")
    gz = write(tmp_path / "BTCUSD_PERP-indexPriceKlines-1m-2022-06-13.csv.gz",
               kline_rows(closes), archive="gz")
    results = [di.to_series(di.import_binance([p])) for p in (plain, headed, gz)]
    for other in results[1:]:
        assert np.array_equal(other.times_ms, results[0].times_ms)
        assert np.array_equal(other.index, results[0].index)
    assert results[0].perp is None  # index only: the perp is derived when loading


def test_bar_path_open_keeps_one_row_per_bar(binance_day: dict[str, Path]) -> None:
    s = di.to_series(di.import_binance([binance_day["index"], binance_day["last"]],
                                       bars="open"))
    assert s.times_ms.tolist() == [T0 + k * MIN for k in range(4)]
    assert s.index.tolist() == [20_010.0, 20_010.0, 19_905.0, 19_940.0]


def test_mark_or_premium_stand_in_for_the_perp(tmp_path: Path) -> None:
    index = write(tmp_path / "BTCUSD-indexPriceKlines-1m-2022-06-13.csv",
                  kline_rows([100.0, 100.0], wick=0))
    mark = write(tmp_path / "BTCUSD_PERP-markPriceKlines-1m-2022-06-13.csv",
                 kline_rows([101.0, 101.0], wick=0))
    premium = write(tmp_path / "BTCUSD_PERP-premiumIndexKlines-1m-2022-06-13.csv",
                    [f"{T0 + i * MIN},-0.01,-0.01,-0.01,-0.01,0,{T0 + i * MIN + MIN - 1},0,0,0,0,0"
                     for i in range(2)])
    with_mark = di.to_series(di.import_binance([index, mark], bars="open"))
    assert with_mark.perp is not None
    assert with_mark.perp.tolist() == [101.0, 101.0]
    data = di.import_binance([index, premium], bars="open")
    with_premium = di.to_series(data)
    assert with_premium.perp is not None
    assert with_premium.perp.tolist() == pytest.approx([99.0, 99.0])
    assert any("premium" in n for n in data.notes)


def test_daily_and_monthly_files_of_the_same_days_are_refused(tmp_path: Path) -> None:
    day = write(tmp_path / "BTCUSD_PERP-1m-2022-06-13.csv", kline_rows([10.0, 20.0, 30.0]))
    month = write(tmp_path / "BTCUSD_PERP-1m-2022-06.csv", kline_rows([10.0, 20.0, 30.0, 40.0]))
    with pytest.raises(ScenarioError, match=r"2022-06\.csv.*overlap another file"):
        di.import_binance([day, month])


@pytest.mark.parametrize(("row", "problem"), [
    (f"{T0 + 2 * MIN},100,101,99,abc,1,{T0 + 3 * MIN - 1},0,0,0,0,0",
     "line 3: close (last) is not a number: 'abc'"),
    (f"{T0 + 2 * MIN},100,101,-99,100,1,{T0 + 3 * MIN - 1},0,0,0,0,0",
     "line 3: low (last) is not positive: '-99'"),
    (f"{T0 + 2 * MIN},100,101,99,inf,1,{T0 + 3 * MIN - 1},0,0,0,0,0",
     "line 3: close (last) is not finite"),
    (f"{T0},100,101,99,100,1,{T0 + MIN - 1},0,0,0,0,0", "line 3: open time is out of order"),
    (f"{T0 + MIN},100,101,99,100,1,{T0 + 2 * MIN - 1},0,0,0,0,0",
     "line 3: open time is duplicate"),
    (f"{T0 + 2 * MIN},100,99,98,100,1,{T0 + 3 * MIN - 1},0,0,0,0,0",
     "line 3: low/high do not contain open and close"),
    (f"{T0 + 2 * MIN},100,101,99", "line 3: expected 12 fields, found 4"),
    (f"1655078520,100,101,99,100,1,{T0 + 3 * MIN - 1},0,0,0,0,0", "line 3: open time"),
])
def test_one_error_names_the_file_the_line_and_the_problem(tmp_path: Path, row: str,
                                                           problem: str) -> None:
    path = tmp_path / "BTCUSD_PERP-1m-2022-06-13.zip"
    write(path, [*kline_rows([100.0, 100.0]), row], archive="zip")
    with pytest.raises(ScenarioError) as info:
        di.to_series(di.import_binance([path]))
    message = str(info.value)
    assert message.startswith(f"{path}:BTCUSD_PERP-1m-2022-06-13.csv, ")
    assert problem in message


def test_sort_sorts_out_of_order_rows_and_says_so(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", ["1655078520000,101", "1655078400000,100",
                                      "1655078460000,102"], header="ts,px")
    with pytest.raises(ScenarioError, match="line 3: ts is out of order"):
        di.import_mapped([path], {"time": "ts", "index": "px"})
    data = di.import_mapped([path], {"time": "ts", "index": "px"}, sort=True)
    s = di.to_series(data)
    assert s.index.tolist() == [100.0, 102.0, 101.0]
    assert any("out of time order; sorted" in n for n in data.notes)


def test_sorted_klines_keep_their_bar_interval(tmp_path: Path) -> None:
    rows = kline_rows([100.0, 101.0, 102.0])
    path = write(tmp_path / "BTCUSD-indexPriceKlines-1m-2022-06-13.csv",
                 [rows[2], rows[0], rows[1]])
    with pytest.raises(ScenarioError, match="line 2: open time is out of order"):
        di.import_binance([path])
    s = di.to_series(di.import_binance([path], sort=True))
    assert s.times_ms.tolist() == [T0 + k * 15_000 for k in range(12)]
    assert s.index[::4].tolist() == [100.0, 100.0, 101.0]


def test_gaps_are_reported_not_refused(tmp_path: Path) -> None:
    rows = kline_rows([100.0] * 5)
    rows += kline_rows([100.0] * 5, start_ms=T0 + 60 * MIN)
    path = write(tmp_path / "BTCUSD-indexPriceKlines-1m-2022-06-13.csv", rows)
    data = di.import_binance([path], bars="open")
    di.to_series(data)
    assert any(n.startswith("1 gap(s) longer than twice the usual step of 60 s") and
               "2022-06-13T00:04:00Z → 2022-06-13T01:00:00Z" in n for n in data.notes)


def test_bybit_klines_and_funding_history(tmp_path: Path) -> None:
    kline = write(tmp_path / "BTCUSD-index-kline-1m.csv",
                  [f"{T0 + i * MIN},{p},{p + 1},{p - 1},{p}" for i, p in enumerate([50.0, 51.0])],
                  header="startTime,open,high,low,close")
    last = write(tmp_path / "BTCUSD-kline-1m.csv",
                 [f"{T0 + i * MIN},{p},{p + 1},{p - 1},{p},10,0.2" for i, p in
                  enumerate([50.5, 51.5])],
                 header="startTime,open,high,low,close,volume,turnover")
    funding = write(tmp_path / "BTCUSD-funding.csv",
                    [f"BTCUSD,0.0003,{T0 + 16 * 3_600_000}", f"BTCUSD,-0.0001,{T0}"],
                    header="symbol,fundingRate,fundingRateTimestamp")
    s = di.to_series(di.import_bybit([kline, last, funding], bars="open"))
    assert s.index.tolist() == [50.0, 51.0]
    assert s.perp is not None
    assert s.perp.tolist() == [50.5, 51.5]
    assert s.funding_times_ms.tolist() == [T0, T0 + 16 * 3_600_000]  # newest-first reversed
    assert s.funding_rates.tolist() == [-0.0001, 0.0003]


def test_bybit_public_archives_metatrader_klines_and_spot_and_premium_index(
        tmp_path: Path) -> None:
    # kline_for_metatrader4: no header, "YYYY.MM.DD HH:MM" in UTC+3 (03:00 there is 00:00 UTC).
    mt4 = write(tmp_path / "BTCUSD_1_2022-06-01_2022-06-30.csv.gz",
                ["2022.06.13 03:00,100,101,99,100.5,12", "2022.06.13 03:01,100.5,102,100,101,3"],
                archive="gz")
    spot_index = write(tmp_path / "BTCUSD2022-06-13_spot_index.csv",
                       [f"{T0 // 1000 + 60 * i},BTCUSD,1,{p},{p},{p},{p}"
                        for i, p in enumerate([99.0, 100.0])],
                       header="start_at,symbol,period,open,high,low,close")
    premium = write(tmp_path / "BTCUSD2022-06-13_premium_index.csv",
                    [f"{T0 // 1000},BTCUSD,1,0.001,0.001,0.001,0.001"],
                    header="start_at,symbol,period,open,high,low,close")
    data = di.import_bybit([mt4, spot_index, premium], bars="open")
    assert data.prices["premium"][0].tolist() == [T0]
    s = di.to_series(data)
    assert s.times_ms.tolist() == [T0, T0 + MIN]
    assert s.index.tolist() == [99.0, 100.0]
    assert s.perp is not None
    assert s.perp.tolist() == [100.0, 100.5]  # last-price klines win over the premium
    assert any("UTC+3" in n for n in data.notes)


def test_tardis_derivative_ticker(tmp_path: Path) -> None:
    us = 1000
    f1 = T0 + 8 * 3_600_000
    rows = [  # exchange,symbol,timestamp,local_timestamp,funding_timestamp,funding_rate,
        # predicted_funding_rate,open_interest,last_price,index_price,mark_price
        f"binance-delivery,BTCUSD_PERP,{(f1 - 2000) * us},{(f1 - 1999) * us},{f1 * us},0.0001,,"
        f"1,20000.5,20000,20001",
        f"binance-delivery,BTCUSD_PERP,{(f1 - 1000) * us},{(f1 - 999) * us},{f1 * us},0.00012,,"
        f"1,,20002,20003",
        f"binance-delivery,BTCUSD_PERP,{(f1 + 1000) * us},{(f1 + 1001) * us},"
        f"{(f1 + 8 * 3_600_000) * us},0.0002,,1,20010,20008,20009",
    ]
    header = ("exchange,symbol,timestamp,local_timestamp,funding_timestamp,funding_rate,"
              "predicted_funding_rate,open_interest,last_price,index_price,mark_price")
    path = write(tmp_path / "binance-delivery_derivative_ticker_2022-06-13_BTCUSD_PERP.csv.gz",
                 rows, header=header, archive="gz")
    s = di.to_series(di.import_tardis([path]))
    assert s.times_ms.tolist() == [f1 - 2000, f1 - 1000, f1 + 1000]
    assert s.index.tolist() == [20000.0, 20002.0, 20008.0]
    assert s.perp is not None
    assert s.perp.tolist() == [20000.5, 20000.5, 20010.0]  # an empty last price holds
    # The rate that settled at f1 is the last quoted before it; the next one has not settled.
    assert s.funding_times_ms.tolist() == [f1]
    assert s.funding_rates.tolist() == [0.00012]


def test_any_csv_with_a_mapping(tmp_path: Path) -> None:
    prices = write(tmp_path / "prices.csv",
                   ["2020-03-12 08:00:00,7900.5,7899", "2020-03-12 09:00:00,7800,7795.5"],
                   header="when,index_price,trade")
    funding = write(tmp_path / "funding.csv",
                    ["2020-03-12T08:00:00Z,0.0001", "2020-03-12T08:30:00Z,0.0009",
                     "2020-03-12T16:00:00Z,-0.0003"], header="when,rate")
    mapping = di.parse_mapping("time=when,index=index_price,perp=trade,funding_rate=rate")
    s = di.to_series(di.import_mapped([prices, funding], mapping, funding_hours=(0, 8, 16)))
    t8 = int(np.datetime64("2020-03-12T08:00", "ms").astype(np.int64))
    assert s.times_ms.tolist() == [t8, t8 + 3_600_000]
    assert s.perp is not None
    assert s.perp.tolist() == [7899.0, 7795.5]
    assert s.funding_times_ms.tolist() == [t8, t8 + 8 * 3_600_000]  # 08:30 is not a funding hour


@pytest.mark.parametrize(("text", "problem"), [
    ("index=px", "needs time=COLUMN"),
    ("time=ts,price=px", "unknown name 'price'"),
    ("time=ts,index", "is not NAME=COLUMN"),
    ("time=ts,index=a,index=b", "mapped twice"),
])
def test_bad_mappings(text: str, problem: str) -> None:
    with pytest.raises(ScenarioError, match=problem):
        di.parse_mapping(text)


def test_a_mapped_file_without_the_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", ["1655078400000,1"], header="ts,other")
    with pytest.raises(ScenarioError, match=r"p\.csv, line 1 \(header\): none of the mapped"):
        di.import_mapped([path], {"time": "ts", "index": "px"})
    with pytest.raises(ScenarioError, match="no column 'stamp'"):
        di.import_mapped([path], {"time": "stamp", "index": "other"})


# ---- the command --------------------------------------------------------------------------------
def test_one_command_turns_a_binance_download_into_a_scenario(
        binance_day: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "june-13"
    code = main(["data", "import", "binance", *map(str, binance_day.values()), "--out", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert f"wrote {out}" in printed.out
    scn = load_scenario(str(out))
    assert scn.mode == "data"
    assert scn.path("BTCUSD").funding_rate_at(T0) == 0.0001  # 08:00 is after the prices end
    assert (out / "SOURCE.txt").read_text().count("BTCUSD_PERP-1m-2022-06-13.zip") == 1


def test_a_bad_file_exits_2_with_one_line_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write(tmp_path / "BTCUSD_PERP-1m-2022-06-13.csv",
                [*kline_rows([10.0, 20.0]),
                 f"{T0 + 2 * MIN},1,2,0.5,x,1,{T0 + 3 * MIN - 1},0,0,0,0,0"])
    out = tmp_path / "never"
    code = main(["data", "import", "binance", str(bad), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1
    assert err[0] == (f"perpsim: error: {bad}, line 3: close (last) is not a number: 'x'")
    assert not out.exists()


@pytest.mark.parametrize(("argv", "problem"), [
    (["csv", "{f}", "--out", "{o}"], "the csv format needs --map"),
    (["binance", "{f}", "--out", "{o}", "--map", "time=a,index=b"], "--map applies to the csv"),
    (["binance", "{f}", "--out", "{o}", "--kind", "trades"], "--kind for binance must be one of"),
    (["csv", "{f}", "--out", "{o}", "--map", "time=a,index=b", "--funding-hours", "0,8,24"],
     "--funding-hours: '0,8,24' is not a list of UTC hours 0-23"),
])
def test_bad_import_arguments_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     argv: list[str], problem: str) -> None:
    f = write(tmp_path / "BTCUSD_PERP-1m-2022-06-13.csv", kline_rows([10.0, 11.0]))
    out = tmp_path / "o"
    code = main(["data", "import", *[a.format(f=f, o=out) for a in argv]])
    assert code == 2
    assert problem in capsys.readouterr().err
    assert not out.exists()
