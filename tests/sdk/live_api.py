"""Drives livesnap's snapshot config API with Huawei's own Python SDK
(huaweicloudsdklive), exactly as a Huawei Live customer's script would.

usage: live_api.py ENDPOINT AK SK PROJECT_ID create|update JSON
       live_api.py ENDPOINT AK SK PROJECT_ID list DOMAIN [APP] [LIMIT] [OFFSET]
       live_api.py ENDPOINT AK SK PROJECT_ID delete DOMAIN APP
       live_api.py ENDPOINT AK SK PROJECT_ID online DOMAIN [APP] [STREAM]
       live_api.py ENDPOINT AK SK PROJECT_ID usage [DOMAIN] [START_TIME] [END_TIME]   (the v2 client)
       live_api.py ENDPOINT AK SK PROJECT_ID domain-create JSON | domain-update JSON
       live_api.py ENDPOINT AK SK PROJECT_ID domain-show [DOMAIN] | domain-delete DOMAIN
       live_api.py ENDPOINT AK SK PROJECT_ID obs-authority BUCKET 1|0
Prints one JSON object: {"ok": true, "body": ...} or
{"ok": false, "status": ..., "error_code": ..., "error_msg": ...}.
"""
import json
import os
import sys

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions import exceptions
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdklive.v2 import ListSnapshotDataRequest
from huaweicloudsdklive.v2 import LiveClient as LiveClientV2
from huaweicloudsdklive.v1 import (
    CreateDomainRequest,
    DeleteDomainRequest,
    LiveDomainCreateReq,
    LiveDomainModifyReq,
    ObsAuthorityConfigV2,
    ShowDomainRequest,
    UpdateDomainRequest,
    UpdateObsBucketAuthorityPublicRequest,
    CreateSnapshotConfigRequest,
    DeleteSnapshotConfigRequest,
    ListLiveStreamsOnlineRequest,
    ListSnapshotConfigsRequest,
    LiveClient,
    LiveSnapshotConfig,
    ObsFileAddr,
    UpdateSnapshotConfigRequest,
)


def config_from(data):
    obs = data.pop("obs_location", None)
    cfg = LiveSnapshotConfig(**data)
    if obs is not None:
        cfg.obs_location = ObsFileAddr(**obs)
    return cfg


def main():
    endpoint, ak, sk, project, op, *args = sys.argv[1:]
    # HTTPS with the operator's own CA, as a customer would configure the SDK.
    http_config = HttpConfig.get_default_config()
    if os.environ.get("LIVESNAP_TEST_CA"):
        http_config.ssl_ca_cert = os.environ["LIVESNAP_TEST_CA"]
    v2 = (
        LiveClientV2.new_builder()
        .with_credentials(BasicCredentials(ak, sk, project))
        .with_http_config(http_config)
        .with_endpoints([endpoint])
        .build()
    )
    client = (
        LiveClient.new_builder()
        .with_credentials(BasicCredentials(ak, sk, project))
        .with_http_config(http_config)
        .with_endpoints([endpoint])
        .build()
    )
    try:
        if op == "create":
            r = client.create_snapshot_config(CreateSnapshotConfigRequest(body=config_from(json.loads(args[0]))))
        elif op == "update":
            r = client.update_snapshot_config(UpdateSnapshotConfigRequest(body=config_from(json.loads(args[0]))))
        elif op == "list":
            req = ListSnapshotConfigsRequest(domain=args[0])
            if len(args) > 1 and args[1]:
                req.app_name = args[1]
            if len(args) > 2:
                req.limit = int(args[2])
            if len(args) > 3:
                req.offset = int(args[3])
            r = client.list_snapshot_configs(req)
        elif op == "delete":
            r = client.delete_snapshot_config(DeleteSnapshotConfigRequest(domain=args[0], app_name=args[1]))
        elif op == "online":
            req = ListLiveStreamsOnlineRequest(publish_domain=args[0])
            if len(args) > 1:
                req.app = args[1]
            if len(args) > 2:
                req.stream = args[2]
            r = client.list_live_streams_online(req)
        elif op == "domain-create":
            r = client.create_domain(CreateDomainRequest(body=LiveDomainCreateReq(**json.loads(args[0]))))
        elif op == "domain-show":
            r = client.show_domain(ShowDomainRequest(domain=args[0] if args else None))
        elif op == "domain-update":
            r = client.update_domain(UpdateDomainRequest(body=LiveDomainModifyReq(**json.loads(args[0]))))
        elif op == "domain-delete":
            r = client.delete_domain(DeleteDomainRequest(domain=args[0]))
        elif op == "obs-authority":
            body = ObsAuthorityConfigV2(bucket=args[0], operation=int(args[1]))
            r = client.update_obs_bucket_authority_public(UpdateObsBucketAuthorityPublicRequest(body=body))
        elif op == "usage":
            fields = dict(zip(["publish_domain", "start_time", "end_time"], args))
            r = v2.list_snapshot_data(ListSnapshotDataRequest(**{k: v for k, v in fields.items() if v}))
        else:
            raise SystemExit(f"unknown operation {op}")
        print(json.dumps({"ok": True, "status": r.status_code, "body": r.to_dict()}, default=str))
    except exceptions.ClientRequestException as e:
        print(json.dumps({"ok": False, "status": e.status_code, "error_code": e.error_code, "error_msg": e.error_msg,
                          "request_id": e.request_id}))


if __name__ == "__main__":
    main()
