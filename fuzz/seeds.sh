#!/usr/bin/env bash
# Builds the seed corpora of every fuzz target under fuzz/corpus/ (not committed):
#   - decode_*: the repo's real CoinGecko extract encoded by each codec (src/seeds.rs);
#   - source_*: small slices of the real data sets in ../shared/data (next to the repo; see
#     each set's SOURCE.md for origin and licence), plus the repo's own extract;
#   - policy: the shipped policies/*.toml.
# The round-trip and SDK targets start from an empty corpus (their input is structured bytes).
# Usage: fuzz/seeds.sh   (from anywhere; STRATA_SHARED_DATA=... overrides ../shared/data)
set -euo pipefail
fuzz="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$fuzz")"
shared="${STRATA_SHARED_DATA:-$repo/../shared/data}"
corpus="$fuzz/corpus"

(cd "$fuzz" && cargo run --quiet --release --bin seeds)

mkdir -p "$corpus"/{policy,source_csv,source_jsonl,source_coingecko,source_cmc,source_coinpaprika,round_trip,sdk_validate}
cp "$repo"/policies/*.toml "$corpus/policy/"

# head that does not fail the pipeline with SIGPIPE.
slice() { awk -v n="$1" 'NR <= n'; }

head -n 40 "$repo/host/data/coingecko-extract.csv" > "$corpus/source_coingecko/extract-head"
if [ ! -d "$shared" ]; then
    echo "no shared data at $shared: only repo seeds written" >&2
    exit 0
fi
cg="$shared/coingecko-daily-1010coins/coins_daily_2013-04-28_2025-07-14.csv.gz"
cg21="$shared/coingecko-2021-daily/coins_2021_daily_top500-not-in-2025-set.csv.gz"
cmc="$shared/cmc-weekly-top20/cmc_weekly_snapshots_2013-2025.ndjson.gz"
cp="$shared/coinpaprika-samples"

zcat "$cg" | slice 60 > "$corpus/source_coingecko/daily-head"
zcat "$cg21" | slice 60 > "$corpus/source_coingecko/2021-head"
zcat "$cmc" | slice 8 > "$corpus/source_cmc/head"
zcat "$cmc" | awk 'NR % 997 == 0' | slice 8 > "$corpus/source_cmc/spread"

# Canonical CSV and JSONL, and a mapped CSV, made from real CoinGecko rows.
zcat "$cg" | awk -F, 'NR == 1 { print "coin,ts,price,market_cap,volume,supply,rank"; next }
    NR <= 50 { print $1 "," $2 "," $3 "," $5 "," $4 ",," NR - 1 }' > "$corpus/source_csv/canonical"
zcat "$cg" | awk -F, 'NR > 1 && NR <= 30 {
    printf "{\"coin\":\"%s\",\"ts\":%s,\"price\":%s,\"market_cap\":%s,\"volume\":%s,\"supply\":null,\"rank\":%d}\n",
        $1, $2, ($3 == "" ? "null" : $3), ($5 == "" ? "null" : $5), ($4 == "" ? "null" : $4), NR - 1 }' \
    > "$corpus/source_jsonl/canonical"
zcat "$cg" | awk -F, 'NR == 1 { print "Date,Close,Volume,Cap"; next }
    NR <= 30 { print strftime("%Y-%m-%d", $2 / 1000, 1) "," $3 "," $4 "," $5 }' > "$corpus/source_csv/mapped"
sed 's/,/;/g' "$corpus/source_csv/mapped" > "$corpus/source_csv/mapped-semicolon"
slice 40 < "$cp/v1_tickers_btc-bitcoin_polled_10s_2023-08-02.csv" > "$corpus/source_csv/coinpaprika-polled"

# Coinpaprika: a few tickers of a real /v1/tickers response, and real historical ticks.
python3 - "$cp" "$corpus/source_coinpaprika" <<'PY'
import gzip, json, sys
src, out = sys.argv[1], sys.argv[2]
tickers = json.load(gzip.open(f"{src}/v1_tickers_2019-09-06.json.gz"))
json.dump(tickers[:4], open(f"{out}/tickers", "w"))
json.dump(tickers[0], open(f"{out}/ticker-one", "w"))
hist = json.load(open(f"{src}/v1_tickers_btc-bitcoin_historical_2019-01-01_5m.json"))
json.dump(hist[:6], open(f"{out}/historical", "w"))
PY
cp "$cp/v1_coins_btc-bitcoin_ohlcv_latest_2019-09-04.json" "$corpus/source_coinpaprika/ohlcv-latest"
echo "seeds written under $corpus"
