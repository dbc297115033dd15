// One hedge cycle through ccxt for Node (ccxt.pro binancecoinm), unmodified.
//
// Run as `node hedge_cycle.mjs <base_url> <api_key> <api_secret>`; prints a JSON report as its
// last line (the same fields as tests/clients/cycle_common.py). Pointed at perpsim by the
// constructor's `urls` only: every URL of ccxt's own table, its path kept, on perpsim's host.
import { readFileSync } from 'node:fs';
import http from 'node:http';

import ccxt from 'ccxt';

const [baseUrl, apiKey, secret] = process.argv.slice(2);
const wsBase = 'ws' + baseUrl.slice('http'.length);
const SYMBOL = 'BTC/USD:BTC';
const MARKET_ID = 'BTCUSD_PERP';
const HEDGE_CONTRACTS = 590;
const REDUCE_CONTRACTS = 10;
const STOP_CONTRACTS = HEDGE_CONTRACTS - REDUCE_CONTRACTS;
const POST_ONLY_PRICE_USD = 70000;
const STOP_TRIGGER_USD = '66000';
// ccxt formats addMargin amounts with the contract precision (whole numbers) on inverse
// markets, as against Binance: the account holds 2 BTC so 1 BTC can be added.
const MARGIN_ADD_BTC = 1;
const PAST_FIRST_FUNDING_MS = 8 * 3_600_000 + 1_000;
const WAIT_MS = 20_000;

// ccxt's URL table (api, test, demo, apiBackup) with every http(s)/ws(s) URL moved to perpsim.
function rebase (node) {
    if (typeof node === 'string') {
        if (/^https?:\/\//.test(node)) { return baseUrl + new URL(node).pathname; }
        if (/^wss?:\/\//.test(node)) { return wsBase + new URL(node).pathname; }
        return node;
    }
    if (node && typeof node === 'object') {
        return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, rebase(v)]));
    }
    return node;
}

const template = new ccxt.pro.binancecoinm();
const urls = {};
for (const set of ['api', 'test', 'demo', 'apiBackup']) {
    if (template.urls[set] !== undefined) { urls[set] = rebase(template.urls[set]); }
}
const ex = new ccxt.pro.binancecoinm({
    apiKey, secret, urls, enableRateLimit: false,
    // perpsim serves plain ws:// on loopback: ccxt wants an http.Agent for that, given here.
    httpAgent: new http.Agent(),
    // true would make loadMarkets call /sapi/v1/capital/config/getall
    options: { fetchCurrencies: false },
});

async function control (path, body) {
    const answer = await fetch(`${baseUrl}/control/${path}`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
    });
    if (!answer.ok) { throw new Error(`control ${path}: ${answer.status} ${await answer.text()}`); }
    return answer.json();
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor (check, what) {
    const deadline = Date.now() + WAIT_MS;
    while (Date.now() < deadline) {
        const found = check();
        if (found) { return found; }
        await sleep(20);
    }
    throw new Error(`timed out waiting for ${what}`);
}

// What the user stream delivered, as ccxt parsed it (each structure keeps Binance's raw frame).
const seen = { orders: [], balances: [], positions: [], marks: 0 };
let stopped = false;
function collect (watch, keep) {
    return (async () => {
        while (!stopped) {
            try {
                keep(await watch());
            } catch (error) {
                if (!stopped) { throw error; }
            }
        }
    })();
}

const filled = (id) => () => seen.orders.find((o) => o.i === id && o.X === 'FILLED');

async function cycle () {
    // The installed package's version (ccxt.version of 4.5.84 still says 4.5.83).
    const installed = JSON.parse(readFileSync(new URL('./node_modules/ccxt/package.json', import.meta.url)));
    const report = { client: 'ccxt-node ' + installed.version };
    await ex.loadMarkets();
    report.server_time_ms = await ex.fetchTime();
    report.symbols = Object.values(ex.markets).map((m) => m.id);
    const book = await ex.fetchOrderBook(SYMBOL, 5);
    report.bid = String(book.bids[0][0]);
    report.ask = String(book.asks[0][0]);
    report.mark_price = (await ex.fetchFundingRate(SYMBOL)).info.markPrice;
    const loops = [
        collect(() => ex.watchOrders(SYMBOL), (orders) => seen.orders.push(...orders.map((o) => o.info))),
        collect(() => ex.watchBalance(), (balance) => seen.balances.push(balance.info)),
        collect(() => ex.watchPositions([SYMBOL]), (positions) => seen.positions.push(...positions.map((p) => p.info))),
        collect(() => ex.watchMarkPrice(SYMBOL), () => { seen.marks += 1; }),
    ];
    // The user stream is live once ccxt's connection on /ws/<listenKey> is open.
    await waitFor(() => Object.values(ex.clients).some((c) => c.isConnected && /\/ws\/[A-Za-z0-9]{20,}$/.test(c.url)), 'the user stream');
    await waitFor(() => seen.marks > 0, 'a mark price frame');
    report.leverage = (await ex.setLeverage(1, SYMBOL)).leverage;
    await ex.setMarginMode('isolated', SYMBOL);
    const maker = await ex.createOrder(SYMBOL, 'limit', 'sell', 1, POST_ONLY_PRICE_USD, { postOnly: true });
    const canceled = await ex.cancelOrder(maker.id, SYMBOL);
    report.post_only = [maker.info.status, maker.info.timeInForce, canceled.info.status];
    const hedge = await ex.createOrder(SYMBOL, 'market', 'sell', HEDGE_CONTRACTS);
    report.hedge_order_id = Number(hedge.id);
    await waitFor(filled(report.hedge_order_id), 'the hedge fill');
    await ex.addMargin(SYMBOL, MARGIN_ADD_BTC);
    const reduce = await ex.createOrder(SYMBOL, 'market', 'buy', REDUCE_CONTRACTS, undefined, { reduceOnly: true });
    report.reduce_order_id = Number(reduce.id);
    await waitFor(filled(report.reduce_order_id), 'the reduce-only fill');
    // A conditional order: ccxt sends it to POST /dapi/v1/algoOrder (algoType CONDITIONAL).
    const stop = await ex.createOrder(SYMBOL, 'market', 'buy', STOP_CONTRACTS, undefined, { triggerPrice: STOP_TRIGGER_USD, reduceOnly: true });
    report.algo_id = Number(stop.info.algoId);
    await waitFor(() => seen.orders.find((o) => o.aid === report.algo_id), 'the stop on the stream');
    await control('advance', { ms: PAST_FIRST_FUNDING_MS });
    await waitFor(() => seen.balances.find((b) => b.a.m === 'FUNDING_FEE'), 'the funding fee');
    report.funding_income = (await ex.fetchFundingHistory(SYMBOL)).map((f) => f.info.income);
    report.funding_rates = (await ex.fetchFundingRateHistory(SYMBOL)).map((r) => r.info.fundingRate);
    // ccxt sends the market id as `pair` (BTCUSD_PERP, −1121) and CURRENT_QUARTER by default:
    // the request's own parameters name the pair and the perpetual.
    const oi = await ex.fetchOpenInterestHistory(SYMBOL, '1h', undefined, 1, { pair: 'BTCUSD', contractType: 'PERPETUAL' });
    report.open_interest_hist = oi[oi.length - 1].info.sumOpenInterest;
    await control('prices', { symbol: MARKET_ID, index: STOP_TRIGGER_USD, perp: STOP_TRIGGER_USD });
    const triggered = await waitFor(() => seen.orders.find((o) => o.aid === report.algo_id && o.ai !== ''), 'the stop triggering');
    await waitFor(filled(Number(triggered.ai)), "the stop's fill");
    await waitFor(() => seen.positions.find((p) => p.s === MARKET_ID && p.pa === '0'), 'the position closed');
    const [position] = await ex.fetchPositions([SYMBOL]);
    report.position_after = position === undefined ? '0' : position.info.positionAmt;
    stopped = true;
    report.stream_filled_order_ids = [...new Set(seen.orders.filter((o) => o.X === 'FILLED' && o.i !== undefined).map((o) => o.i))].sort((a, b) => a - b);
    report.stream_algo_statuses = seen.orders.filter((o) => o.aid === report.algo_id).map((o) => o.X);
    report.stream_funding_fee_updates = seen.balances.filter((b) => b.a.m === 'FUNDING_FEE').length;
    report.stream_leverage_updates = null; // ccxt does not surface ACCOUNT_CONFIG_UPDATE
    report.stream_position_row_keys = [...new Set(seen.positions.map((p) => Object.keys(p).join(',')))].sort();
    report.stream_mark_frames = seen.marks;
    report.stream_names = [];
    await ex.close();
    await Promise.allSettled(loops);
    return report;
}

const timer = setTimeout(() => { console.error('hedge cycle timed out'); process.exit(2); }, 180_000);
try {
    console.log(JSON.stringify(await cycle()));
    clearTimeout(timer);
} catch (error) {
    console.error(error);
    process.exit(1);
}
process.exit(0);
