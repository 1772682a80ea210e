//! livesnap-loadgen: many RTMP publishers in one process, each replaying a
//! pre-encoded FLV in real time, plus an HTTP listener that receives the
//! callbacks and measures how long after its due time each snapshot's
//! callback arrived (scripts/load.py). Each publisher also measures its own
//! lag against real time, so a step where the load generator could not keep
//! up is reported as invalid rather than as livesnap's result:
//! `max_lag_ms` is how late a tag's send began although the publisher was
//! waiting for it (the generator short of CPU); `max_behind_ms` how late it
//! was because the previous send had not finished (livesnap not reading).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use livesnap::ingest::rtmp::amf0::{self, Value as Amf, object, string};
use livesnap::ingest::rtmp::chunk::{Message, encode_message};

/// Replays an FLV to many RTMP streams at once and measures callbacks.
#[derive(Parser)]
struct Args {
    /// RTMP address of the service.
    #[arg(long, default_value = "127.0.0.1:1935")]
    rtmp: SocketAddr,
    /// Domain (tcUrl host) and app to publish to.
    #[arg(long, default_value = "localhost")]
    domain: String,
    /// Application.
    #[arg(long, default_value = "live")]
    app: String,
    /// The FLV to replay (looped).
    #[arg(long)]
    flv: PathBuf,
    /// Publishers.
    #[arg(long)]
    streams: usize,
    /// Seconds to publish.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Where to receive callbacks.
    #[arg(long, default_value = "127.0.0.1:9900")]
    listen: SocketAddr,
    /// A snapshot is on time if its callback arrives within this many ms of its due time (one GOP).
    #[arg(long, default_value_t = 2000)]
    on_time_ms: u64,
    /// The template's snapshot interval, to place each snapshot on its due time.
    #[arg(long, default_value_t = 5000)]
    interval_ms: i64,
    /// Publishers connect one after another over this many ms. Independent
    /// publishers come due at unrelated times, as when they spread over a
    /// whole interval (5000); a small value puts them all in phase, which
    /// makes every snapshot of a round come due at once (the worst case).
    #[arg(long, default_value_t = 5000)]
    spread_ms: u64,
    /// Stream name prefix (distinct per ramp step).
    #[arg(long, default_value = "load")]
    prefix: String,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let tags = Arc::new(video_tags(&args.flv)?);
    if tags.is_empty() {
        bail!("{} has no video tags", args.flv.display());
    }
    // Per callback: (stream, ms from due time, ms from the picture's time).
    let latencies: Arc<Mutex<Vec<(String, i64, i64)>>> = Arc::default();
    // Unix ms at which each publisher sent `publish`: livesnap's stream time 0
    // is a few ms later, never earlier.
    let starts: Arc<Mutex<HashMap<String, i64>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind(args.listen).await.context("binding the callback listener")?;
    let (lat, st, interval) = (latencies.clone(), starts.clone(), args.interval_ms.max(1));
    let app = axum::Router::new().route(
        "/callback",
        axum::routing::post(move |body: axum::body::Bytes| {
            let (lat, st) = (lat.clone(), st.clone());
            async move {
                let now = now_ms();
                if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                    let object = v["obs_addr"]["object"].as_str().unwrap_or_default();
                    // Objects are named {...}/{stream}/{unix_time_milli}.jpg: the picture's time.
                    let at: i64 = object.rsplit('/').next().unwrap_or("").trim_end_matches(".jpg").parse().unwrap_or(0);
                    let stream = v["stream_name"].as_str().unwrap_or("").to_string();
                    let start = st.lock().unwrap().get(&stream).copied().unwrap_or(at);
                    // Due times are start + k·interval; a keyframe snapshot takes
                    // the first IDR at or after its due time (GOP < interval).
                    let due = start + (at - start).max(0) / interval * interval;
                    lat.lock().unwrap().push((stream, now - due, now - at));
                }
                "ok"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });

    let started = Instant::now();
    // Each publisher gets the full duration however late it starts.
    let deadline = started + Duration::from_secs(args.seconds) + Duration::from_millis(args.spread_ms);
    let mut tasks = Vec::new();
    for i in 0..args.streams {
        let (tags, a) = (tags.clone(), (args.rtmp, args.domain.clone(), args.app.clone(), format!("{}{i}", args.prefix)));
        let starts = starts.clone();
        tasks.push(tokio::spawn(async move { publish(a.0, &a.1, &a.2, &a.3, &tags, deadline, &starts).await }));
        tokio::time::sleep(Duration::from_micros(args.spread_ms * 1000 / args.streams.max(1) as u64)).await;
    }
    let (mut failed, mut lags, mut behind) = (0, Vec::new(), 0u64);
    for t in tasks {
        match t.await {
            Ok(Ok(pace)) => {
                lags.push(pace.lag_ms);
                behind = behind.max(pace.behind_ms);
            }
            _ => failed += 1,
        }
    }
    let lagging = lags.iter().filter(|l| **l > 1000).count();
    tokio::time::sleep(Duration::from_secs(3)).await; // callbacks of the last snapshots
    let all = latencies.lock().unwrap().clone();
    let mut per_stream: HashMap<String, usize> = HashMap::new();
    for (stream, _, _) in &all {
        *per_stream.entry(stream.clone()).or_default() += 1;
    }
    let mut lat: Vec<i64> = all.iter().map(|l| l.1).collect();
    let mut from_picture: Vec<i64> = all.iter().map(|l| l.2).collect();
    lat.sort();
    from_picture.sort();
    let pct = |v: &[i64], p: f64| v.get(((v.len() as f64 * p).ceil() as usize).saturating_sub(1)).copied().unwrap_or(0);
    let on_time = lat.iter().filter(|l| **l <= args.on_time_ms as i64).count();
    let expected = args.streams as u64 * args.seconds.div_ceil(5);
    println!(
        "{}",
        json!({"streams": args.streams, "publishers_failed": failed, "callbacks": lat.len(), "expected_about": expected,
               "streams_with_callbacks": per_stream.len(),
               "on_time_fraction": if lat.is_empty() { 0.0 } else { on_time as f64 / lat.len() as f64 },
               "p50_ms": pct(&lat, 0.5), "p99_ms": pct(&lat, 0.99), "max_ms": lat.last().copied().unwrap_or(0),
               "picture_p50_ms": pct(&from_picture, 0.5), "picture_p99_ms": pct(&from_picture, 0.99),
               "max_lag_ms": lags.iter().max().copied().unwrap_or(0), "publishers_lagging": lagging, "max_behind_ms": behind})
    );
    Ok(())
}

/// (timestamp ms, tag body) of every video tag.
fn video_tags(path: &PathBuf) -> anyhow::Result<Vec<(u32, Vec<u8>)>> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut pos = 13;
    let mut out = Vec::new();
    while pos + 11 <= data.len() {
        let size = u32::from_be_bytes([0, data[pos + 1], data[pos + 2], data[pos + 3]]) as usize;
        let ts = u32::from_be_bytes([data[pos + 7], data[pos + 4], data[pos + 5], data[pos + 6]]);
        if pos + 11 + size > data.len() {
            break;
        }
        if data[pos] == 9 {
            out.push((ts, data[pos + 11..pos + 11 + size].to_vec()));
        }
        pos += 11 + size + 4;
    }
    Ok(out)
}

/// How well a publisher kept to real time.
#[derive(Default)]
struct Pace {
    /// Worst lateness of a send it was waiting for (ms).
    lag_ms: u64,
    /// Worst lateness because the previous send was still blocked (ms).
    behind_ms: u64,
}

async fn publish(
    addr: SocketAddr,
    domain: &str,
    app: &str,
    name: &str,
    tags: &[(u32, Vec<u8>)],
    until: Instant,
    starts: &Mutex<HashMap<String, i64>>,
) -> anyhow::Result<Pace> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let mut c0c1 = vec![3u8];
    c0c1.extend(std::iter::repeat_n(0u8, 1536));
    s.write_all(&c0c1).await?;
    let mut s0s1s2 = vec![0u8; 1 + 2 * 1536];
    s.read_exact(&mut s0s1s2).await?;
    s.write_all(&s0s1s2[1..1537]).await?;
    let (mut rd, mut wr) = s.into_split();
    tokio::spawn(async move {
        let mut sink = vec![0u8; 16 * 1024];
        while matches!(rd.read(&mut sink).await, Ok(n) if n > 0) {}
    });
    const CHUNK: usize = 60_000;
    let msg = |csid, type_id, stream_id, timestamp, payload| {
        encode_message(if type_id == 1 { 128 } else { CHUNK }, &Message { csid, timestamp, type_id, stream_id, payload })
    };
    let cmd = |stream_id: u32, v: &[Amf]| msg(3, 20, stream_id, 0, amf0::encode(v));
    let mut out = msg(2, 1, 0, 0, (CHUNK as u32).to_be_bytes().to_vec());
    out.extend(cmd(
        0,
        &[string("connect"), Amf::Number(1.0), object(&[("app", string(app)), ("tcUrl", string(&format!("rtmp://{domain}/{app}")))])],
    ));
    out.extend(cmd(0, &[string("createStream"), Amf::Number(2.0), Amf::Null]));
    out.extend(cmd(1, &[string("publish"), Amf::Number(3.0), Amf::Null, string(name), string("live")]));
    starts.lock().unwrap().insert(name.to_string(), now_ms());
    wr.write_all(&out).await?;
    let length = tags.last().map_or(0, |t| t.0) + 33;
    let start = Instant::now();
    let mut lap = 0u32;
    let mut pace = Pace::default();
    let ms = |d: Duration| d.as_millis() as u64;
    loop {
        for (ts, body) in tags {
            // After the first lap, the sequence header is not resent.
            if lap > 0 && body.get(1) == Some(&0) {
                continue;
            }
            let t = lap * length + ts;
            let at = start + Duration::from_millis(u64::from(t));
            if at >= until {
                return Ok(pace);
            }
            let now = Instant::now();
            if now > at {
                pace.behind_ms = pace.behind_ms.max(ms(now - at));
            } else {
                tokio::time::sleep_until(at.into()).await;
                pace.lag_ms = pace.lag_ms.max(ms(Instant::now().saturating_duration_since(at)));
            }
            wr.write_all(&msg(6, 9, 1, t, body.clone())).await?;
        }
        lap += 1;
    }
}

fn now_ms() -> i64 {
    livesnap::time::unix_ms() as i64
}
