//! On-demand snapshots across nodes: asked through a node that does not
//! have the stream, they are rows in the state database for the node that
//! has it (its stream lease says which), which takes the snapshot and
//! writes the answer back (ARCHITECTURE §8).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::ControlError;
use super::projects::Tenant;
use crate::app::State;

/// How often a node looks for on-demand snapshots asked of its streams
/// through other nodes, and an asking node for the answer.
const REQUESTS: Duration = Duration::from_millis(100);

/// Asks the node a stream is live on for a snapshot now (a request through
/// the database) and waits up to `timeout` for its answer.
pub async fn ask(state: &Arc<State>, stream: &crate::cluster::RemoteStream, timeout: Duration) -> Result<serde_json::Value, ControlError> {
    let id = crate::project::random_hex(16);
    let (request, node, owner, key) = (id.clone(), stream.node.clone(), stream.owner.clone(), stream.key.clone());
    crate::cluster::blocking(state, move |st| {
        st.db().ask(&request, &node, &owner, (&key.0, &key.1, &key.2), crate::time::unix_ms() as i64).map_err(|e| e.to_string())
    })
    .await
    .map_err(ControlError::Failed)?;
    // The answering node may take the whole timeout itself.
    let deadline = tokio::time::Instant::now() + timeout + Duration::from_secs(5);
    let answer = loop {
        tokio::time::sleep(REQUESTS).await;
        let request = id.clone();
        match crate::cluster::blocking(state, move |st| st.db().answer_of(&request).map_err(|e| e.to_string())).await {
            Ok(Some(answer)) => break Some(answer),
            Ok(None) if tokio::time::Instant::now() < deadline => {}
            Ok(None) => break None,
            Err(e) => return Err(ControlError::Failed(e)),
        }
    };
    let request = id.clone();
    let _ = crate::cluster::blocking(state, move |st| {
        st.db().forget(&request, crate::time::unix_ms() as i64 - 3_600_000).map_err(|e| e.to_string())
    })
    .await;
    match answer {
        Some(Ok(json)) => serde_json::from_str(&json).map_err(|e| ControlError::Failed(e.to_string())),
        Some(Err(why)) => Err(match why.split_once('\t') {
            Some(("not_found", message)) => ControlError::NotFound(message.to_string()),
            Some((_, message)) => ControlError::Unavailable(message.to_string()),
            None => ControlError::Unavailable(why),
        }),
        None => Err(ControlError::Unavailable(format!("node {} did not answer within {} s", stream.node, timeout.as_secs()))),
    }
}

/// Takes on-demand snapshots asked of this node's streams through other
/// nodes, and answers them, until cancelled.
pub async fn answer_requests(state: Arc<State>, cancel: CancellationToken) {
    if !state.node().shared() {
        return;
    }
    let taken = Arc::new(std::sync::Mutex::new(std::collections::HashSet::<String>::new()));
    let mut tick = crate::cluster::ticker(REQUESTS);
    while crate::cluster::next_tick(&mut tick, &cancel).await {
        let asked = match crate::cluster::blocking(&state, |st| st.db().asked(st.node().name()).map_err(|e| e.to_string())).await {
            Ok(asked) => asked,
            Err(e) => {
                tracing::warn!("reading on-demand requests: {e}");
                continue;
            }
        };
        for crate::state::SnapshotRequest { id, owner, stream: (domain, app, stream) } in asked {
            if !taken.lock().unwrap().insert(id.clone()) {
                continue;
            }
            let (state, taken) = (state.clone(), taken.clone());
            tokio::spawn(async move {
                let tenant = Tenant { key: owner.clone(), project_id: owner };
                let answer = super::streams::snapshot_here(&state, &tenant, &(domain, app, stream)).await;
                let answer = answer.map(|v| v.to_string()).map_err(|e| match e {
                    ControlError::NotFound(m) => format!("not_found\t{m}"),
                    other => format!("unavailable\t{other}"),
                });
                let request = id.clone();
                let written = crate::cluster::blocking(&state, move |st| {
                    let answer = match &answer {
                        Ok(json) => Ok(json.as_str()),
                        Err(why) => Err(why.as_str()),
                    };
                    st.db().answer(&request, answer).map_err(|e| e.to_string())
                })
                .await;
                if let Err(e) = written {
                    tracing::warn!("answering an on-demand request: {e}");
                }
                taken.lock().unwrap().remove(&id);
            });
        }
    }
}
