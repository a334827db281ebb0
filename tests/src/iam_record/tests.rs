//! The recording parser on moto's own format (one line as moto 5.2.5
//! wrote it for a boto3 CreateTable) and on lines built here per protocol.

use std::collections::BTreeMap;

use movieapp_operator::policies::evaluation::{Principal, Request, Tags};
use serde_json::json;

use super::*;

/// A CreateTable with one tag, as moto's recorder wrote it (base64 body).
const MOTO_LINE: &str = r#"{"headers": {"Host": "127.0.0.1:21224", "Accept-Encoding": "identity", "X-Amz-Target": "DynamoDB_20120810.CreateTable", "Content-Type": "application/x-amz-json-1.0", "User-Agent": "Boto3/1.44.8 md/Botocore#1.44.8 ua/2.1 os/linux#6.18.44-fc-v1147 md/arch#x86_64 lang/python#3.11.7 md/pyimpl#CPython m/Z,b,E,N,e,P cfg/retry-mode#standard Botocore/1.44.8", "X-Amz-Date": "20261203T152854Z", "Authorization": "AWS4-HMAC-SHA256 Credential=AKIAOPERATOR/20261203/us-east-1/dynamodb/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=1510d6df836f2c088a4e85310736f2d4e40f59de9acde08f54414397627e7cf9", "Amz-Sdk-Invocation-Id": "f5c731cb-cecf-492a-90a4-41f488c96576", "Amz-Sdk-Request": "attempt=1; max=4", "Content-Length": "229"}, "method": "POST", "url": "http://127.0.0.1:21224/", "body": "eyJUYWJsZU5hbWUiOiAibW92aWVhcHAtdCIsICJBdHRyaWJ1dGVEZWZpbml0aW9ucyI6IFt7IkF0dHJpYnV0ZU5hbWUiOiAiayIsICJBdHRyaWJ1dGVUeXBlIjogIlMifV0sICJLZXlTY2hlbWEiOiBbeyJBdHRyaWJ1dGVOYW1lIjogImsiLCAiS2V5VHlwZSI6ICJIQVNIIn1dLCAiQmlsbGluZ01vZGUiOiAiUEFZX1BFUl9SRVFVRVNUIiwgIlRhZ3MiOiBbeyJLZXkiOiAiYSIsICJWYWx1ZSI6ICJiIn1dfQ==", "body_encoded": true}"#;

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn auth(key: &str, service: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential={key}/20261203/us-east-1/{service}/aws4_request, \
         SignedHeaders=host;x-amz-date, Signature=00"
    )
}

/// A JSON-protocol request (`X-Amz-Target`).
fn json_line(key: &str, service: &str, target: &str, body: serde_json::Value) -> String {
    json!({
        "headers": {
            "Host": "127.0.0.1:5000",
            "X-Amz-Target": target,
            "Content-Type": "application/x-amz-json-1.0",
            "Authorization": auth(key, service),
        },
        "method": "POST",
        "url": "http://127.0.0.1:5000/",
        "body": body.to_string(),
        "body_encoded": false,
    })
    .to_string()
}

/// A query-protocol request (`Action=`), optionally unsigned.
fn query_line(key: Option<&str>, service: &str, body: &str) -> String {
    let mut headers = json!({
        "Host": "127.0.0.1:5000",
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
    });
    if let Some(key) = key {
        headers["Authorization"] = auth(key, service).into();
    }
    json!({
        "headers": headers,
        "method": "POST",
        "url": "http://127.0.0.1:5000/",
        "body": body,
        "body_encoded": false,
    })
    .to_string()
}

fn keys() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("AKOPERATOR".to_owned(), "operator".to_owned()),
        ("AKWORKERA".to_owned(), "worker-a".to_owned()),
    ])
}

const TABLE: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/movieapp-a-watchlists";
const QUEUE_URL: &str = "http://127.0.0.1:5000/123456789012/movieapp-a-jobs";
const QUEUE: &str = "arn:aws:sqs:us-east-1:123456789012:movieapp-a-jobs";
const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:movieapp-a-notifications";

/// A short run: the operator makes a table, queue, topic and role, the
/// worker uses them, the operator untags and deletes; moto's API, an
/// unsigned web-identity call and a setup request beside them.
fn run() -> String {
    let ours = json!([{"Key": "owner", "Value": "a"}, {"Key": "team", "Value": "x"}]);
    [
        json!({"headers": {"Host": "h"}, "method": "POST",
               "url": "http://127.0.0.1:5000/moto-api/reset", "body": "", "body_encoded": false})
        .to_string(),
        json_line("AKOPERATOR", "dynamodb", "DynamoDB_20120810.CreateTable",
            json!({"TableName": "movieapp-a-watchlists", "Tags": ours})),
        json_line("AKOPERATOR", "sqs", "AmazonSQS.CreateQueue",
            json!({"QueueName": "movieapp-a-jobs", "tags": {"owner": "a"}})),
        query_line(Some("AKOPERATOR"), "sns",
            "Action=CreateTopic&Name=movieapp-a-notifications&Tags.member.1.Key=owner&Tags.member.1.Value=a"),
        query_line(Some("AKOPERATOR"), "iam",
            "Action=CreateRole&RoleName=movieapp-a-worker&Path=%2Fmovieapp%2F\
             &PermissionsBoundary=arn%3Aaws%3Aiam%3A%3A123456789012%3Apolicy%2Fb\
             &Tags.member.1.Key=owner&Tags.member.1.Value=a"),
        query_line(Some("AKOPERATOR"), "iam", "Action=GetRole&RoleName=movieapp-a-worker"),
        query_line(None, "sts", "Action=AssumeRoleWithWebIdentity&RoleArn=x&WebIdentityToken=t"),
        query_line(Some("AKWORKERA"), "sts", "Action=GetCallerIdentity"),
        json_line("AKWORKERA", "dynamodb", "DynamoDB_20120810.Query",
            json!({"TableName": "movieapp-a-watchlists", "IndexName": "by-movie"})),
        json_line("AKWORKERA", "dynamodb", "DynamoDB_20120810.TransactWriteItems",
            json!({"TransactItems": [
                {"Put": {"TableName": "movieapp-a-watchlists", "Item": {}}},
                {"Update": {"TableName": "movieapp-a-users", "Key": {}}},
            ]})),
        json_line("AKWORKERA", "sqs", "AmazonSQS.DeleteMessageBatch",
            json!({"QueueUrl": QUEUE_URL, "Entries": []})),
        query_line(Some("AKWORKERA"), "sns",
            &format!("Action=PublishBatch&TopicArn={}", TOPIC.replace(':', "%3A"))),
        json_line("AKSETUP", "dynamodb", "DynamoDB_20120810.PutItem",
            json!({"TableName": "movieapp-a-watchlists"})),
        json_line("AKOPERATOR", "dynamodb", "DynamoDB_20120810.UntagResource",
            json!({"ResourceArn": TABLE, "TagKeys": ["team"]})),
        json_line("AKOPERATOR", "dynamodb", "DynamoDB_20120810.DeleteTable",
            json!({"TableName": "movieapp-a-watchlists"})),
        json_line("AKOPERATOR", "dynamodb", "DynamoDB_20120810.DescribeTable",
            json!({"TableName": "movieapp-a-watchlists"})),
        json_line("AKOPERATOR", "sqs", "AmazonSQS.UntagQueue",
            json!({"QueueUrl": QUEUE_URL, "TagKeys": ["owner"]})),
        json_line("AKOPERATOR", "sqs", "AmazonSQS.GetQueueAttributes",
            json!({"QueueUrl": QUEUE_URL})),
        json_line("AKOPERATOR", "tagging", "ResourceGroupsTaggingAPI_20170126.GetResources",
            json!({})),
        json_line("AKOPERATOR", "ecr", "AmazonEC2ContainerRegistry_V20150921.DescribeImages",
            json!({"repositoryName": "movieapp-api-worker"})),
    ]
    .join("\n")
}

#[test]
fn moto_s_own_line_is_read_with_its_tags_as_a_create_and_a_tag() {
    let keys = BTreeMap::from([("AKIAOPERATOR".to_owned(), "operator".to_owned())]);
    let out = authorizations(MOTO_LINE, &keys, MOTO_ACCOUNT).expect("parsed");
    assert_eq!(out.authorized.len(), 1);
    let a = &out.authorized[0];
    assert_eq!(
        (a.principal.as_str(), a.operation.as_str()),
        ("operator", "dynamodb:CreateTable")
    );
    let actions: Vec<&str> = a.requests.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["dynamodb:CreateTable", "dynamodb:TagResource"]);
    for r in &a.requests {
        assert_eq!(
            r.resource,
            "arn:aws:dynamodb:us-east-1:123456789012:table/movieapp-t"
        );
        assert_eq!(r.request_tags, tags(&[("a", "b")]));
        assert_eq!(r.tag_keys, ["a"]);
        assert!(r.resource_tags.is_empty());
    }
}

fn requests(out: &Authorizations, principal: &str) -> Vec<Request> {
    out.of(principal).cloned().collect()
}

fn find<'a>(requests: &'a [Request], action: &str) -> Vec<&'a Request> {
    requests.iter().filter(|r| r.action == action).collect()
}

#[test]
fn each_protocol_gives_the_action_resource_and_context_aws_would() {
    let out = authorizations(&run(), &keys(), MOTO_ACCOUNT).expect("parsed");
    let ignored: Vec<&str> = out.ignored.keys().map(String::as_str).collect();
    assert_eq!(ignored.len(), 4, "{ignored:?}");
    assert!(ignored.iter().any(|i| i.contains("/moto-api")));
    assert!(
        ignored
            .iter()
            .any(|i| i.contains("unsigned AssumeRoleWithWebIdentity"))
    );
    assert!(ignored.iter().any(|i| i.contains("GetCallerIdentity")));
    assert!(ignored.iter().any(|i| i.contains("AKSETUP")));

    let operator = requests(&out, "operator");
    let ours = tags(&[("owner", "a"), ("team", "x")]);
    // Created with tags: the create and the tag action, both with the
    // request's tags.
    let created = find(&operator, "dynamodb:TagResource");
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].request_tags, ours);
    assert_eq!(created[0].resource, TABLE);
    let queue = find(&operator, "sqs:TagQueue");
    assert_eq!(
        (queue[0].resource.as_str(), &queue[0].request_tags),
        (QUEUE, &tags(&[("owner", "a")]))
    );
    let topic = find(&operator, "sns:TagResource");
    assert_eq!(topic[0].resource, TOPIC);
    let role = find(&operator, "iam:CreateRole");
    assert_eq!(
        role[0].resource,
        "arn:aws:iam::123456789012:role/movieapp/movieapp-a-worker"
    );
    assert_eq!(
        role[0].permissions_boundary.as_deref(),
        Some("arn:aws:iam::123456789012:policy/b")
    );
    assert_eq!(find(&operator, "iam:TagRole").len(), 1);
    // The path CreateRole gave is remembered for the role's ARN, and its
    // tags replayed.
    let get = find(&operator, "iam:GetRole");
    assert_eq!(get[0].resource, role[0].resource);
    assert_eq!(get[0].resource_tags, tags(&[("owner", "a")]));
    // Untagging reads the tags before the call, names the keys; a deleted
    // table's tags are gone for the next request.
    let untag = find(&operator, "dynamodb:UntagResource");
    assert_eq!(
        (&untag[0].resource_tags, &untag[0].tag_keys),
        (&ours, &vec!["team".to_owned()])
    );
    let delete = find(&operator, "dynamodb:DeleteTable");
    assert_eq!(delete[0].resource_tags, tags(&[("owner", "a")]));
    assert!(
        find(&operator, "dynamodb:DescribeTable")[0]
            .resource_tags
            .is_empty()
    );
    assert!(
        find(&operator, "sqs:GetQueueAttributes")[0]
            .resource_tags
            .is_empty()
    );
    assert_eq!(find(&operator, "tag:GetResources")[0].resource, "*");
    assert_eq!(
        find(&operator, "ecr:DescribeImages")[0].resource,
        "arn:aws:ecr:us-east-1:123456789012:repository/movieapp-api-worker"
    );
    // The last tags each resource carried.
    assert_eq!(out.tags[TABLE], tags(&[("owner", "a")]));

    let worker = requests(&out, "worker-a");
    let query = find(&worker, "dynamodb:Query");
    assert_eq!(query[0].resource, format!("{TABLE}/index/by-movie"));
    assert_eq!(
        query[0].resource_tags, ours,
        "an index has its table's tags"
    );
    let items: Vec<(&str, &str)> = worker
        .iter()
        .filter(|r| r.action == "dynamodb:PutItem" || r.action == "dynamodb:UpdateItem")
        .map(|r| (r.action.as_str(), r.resource.as_str()))
        .collect();
    assert_eq!(
        items,
        [
            ("dynamodb:PutItem", TABLE),
            (
                "dynamodb:UpdateItem",
                "arn:aws:dynamodb:us-east-1:123456789012:table/movieapp-a-users"
            ),
        ]
    );
    assert_eq!(find(&worker, "sqs:DeleteMessage")[0].resource, QUEUE);
    let publish = find(&worker, "sns:Publish");
    assert_eq!(
        (publish[0].resource.as_str(), &publish[0].resource_tags),
        (TOPIC, &tags(&[("owner", "a")]))
    );
}

fn allow(actions: &[&str], resources: &[&str]) -> serde_json::Value {
    json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": actions, "Resource": resources},
    ]})
}

#[test]
fn the_report_counts_per_role_and_names_what_was_denied() {
    let out = authorizations(&run(), &keys(), MOTO_ACCOUNT).expect("parsed");
    let operator = Principal::with_policy(allow(&["*"], &["*"]));
    // The worker may query and write its own table, not the users table,
    // and has no queue statement.
    let worker = Principal::with_policy(json!({"Statement": [
        {"Effect": "Allow", "Action": ["dynamodb:Query", "dynamodb:PutItem"],
         "Resource": [TABLE, format!("{TABLE}/index/*")],
         "Condition": {"StringEquals": {"aws:ResourceTag/owner": "a"}}},
        {"Effect": "Allow", "Action": "sns:Publish", "Resource": TOPIC},
    ]}));
    let policies = BTreeMap::from([
        ("operator".to_owned(), operator),
        ("worker-a".to_owned(), worker.clone()),
    ]);
    let report = evaluate(&out, &policies).expect("evaluated");
    let op = &report.roles["operator"];
    assert_eq!((op.requests, op.denied.len()), (12, 0));
    assert_eq!(op.authorizations, 16, "four creates with tags are two each");
    assert_eq!(op.allowed, op.authorizations);
    let w = &report.roles["worker-a"];
    assert_eq!((w.requests, w.authorizations, w.allowed), (4, 5, 3));
    assert_eq!(w.actions.len(), 5);
    assert_eq!(w.denied.len(), 2, "{:?}", w.denied);
    assert!(w.denied.iter().any(|d| d.contains(
        "dynamodb:UpdateItem on arn:aws:dynamodb:us-east-1:123456789012:table/movieapp-a-users"
    )));
    assert!(w.denied.iter().any(|d| d.contains("sqs:DeleteMessage")));
    let error = report.ensure_all_allowed().expect_err("denied");
    assert!(
        error.to_string().contains("2 recorded request(s)"),
        "{error}"
    );
    let error = check_recording(&run(), &keys(), &policies).expect_err("denied");
    assert!(
        error.to_string().contains("worker-a: ImplicitDeny"),
        "{error}"
    );
    // A principal without policies has everything denied.
    let only_operator = BTreeMap::from([("operator".to_owned(), policies["operator"].clone())]);
    let report = evaluate(&out, &only_operator).expect("evaluated");
    assert_eq!(report.roles["worker-a"].allowed, 0);
    // The worker's tag condition is what it is evaluated on: without its
    // table's tags the query is denied.
    let untagged = Request {
        resource_tags: Tags::new(),
        ..find(&requests(&out, "worker-a"), "dynamodb:Query")[0].clone()
    };
    assert_eq!(
        allowed_among(&worker, &[untagged])
            .expect("evaluated")
            .len(),
        0
    );
    let display = report.to_string();
    assert!(
        display.contains("requests") && display.contains("ignored"),
        "{display}"
    );
}

#[test]
fn what_the_parser_cannot_resolve_fails_instead_of_passing() {
    let unknown = json_line(
        "AKOPERATOR",
        "kinesis",
        "Kinesis_20131202.PutRecord",
        json!({}),
    );
    let error = authorizations(&unknown, &keys(), MOTO_ACCOUNT).expect_err("unknown service");
    assert!(format!("{error:#}").contains("kinesis"), "{error:#}");
    let no_table = json_line(
        "AKWORKERA",
        "dynamodb",
        "DynamoDB_20120810.GetItem",
        json!({}),
    );
    let error = authorizations(&no_table, &keys(), MOTO_ACCOUNT).expect_err("no table");
    assert!(
        format!("{error:#}").contains("without TableName"),
        "{error:#}"
    );
    let bad_url = json_line(
        "AKWORKERA",
        "sqs",
        "AmazonSQS.ReceiveMessage",
        json!({"QueueUrl": "nope"}),
    );
    assert!(authorizations(&bad_url, &keys(), MOTO_ACCOUNT).is_err());
    assert!(authorizations("{not json", &keys(), MOTO_ACCOUNT).is_err());
    // The same requests under a key the map does not name are only counted.
    let out = authorizations(&unknown, &BTreeMap::new(), MOTO_ACCOUNT).expect("ignored");
    assert!(out.authorized.is_empty() && out.ignored.values().sum::<usize>() == 1);
}

#[test]
fn base64_and_forms_decode_as_moto_and_the_sdks_write_them() {
    assert_eq!(
        base64("QWN0aW9uPUdldFJvbGU=").expect("b64"),
        b"Action=GetRole"
    );
    assert_eq!(
        base64("QWN0aW9uPUdldFJvbGU").expect("unpadded"),
        b"Action=GetRole"
    );
    assert!(base64("not*base64").is_err());
    assert_eq!(
        form("Action=Publish&TopicArn=arn%3Aaws%3Asns&Message=a+b%2"),
        [
            ("Action".to_owned(), "Publish".to_owned()),
            ("TopicArn".to_owned(), "arn:aws:sns".to_owned()),
            ("Message".to_owned(), "a b%2".to_owned()),
        ]
    );
}

#[test]
fn a_saved_run_is_checked_with_each_role_s_document_and_the_worker_boundary() {
    let dir = std::env::temp_dir().join(format!("iam-record-dir-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("iam")).expect("dir");
    let write = |file: &str, text: String| std::fs::write(dir.join(file), text).expect("write");
    write("recording.jsonl", run());
    write(
        "keys.json",
        json!({"AKOPERATOR": "operator", "AKWORKERA": "worker-a"}).to_string(),
    );
    write("iam/operator.json", allow(&["*"], &["*"]).to_string());
    write("iam/worker-a.json", allow(&["*"], &["*"]).to_string());
    // Without the boundary a worker role is not evaluated at all.
    let error = check_recording_dir(&dir).expect_err("no boundary");
    assert!(
        error.to_string().contains("worker-boundary.json"),
        "{error}"
    );
    write(WORKER_BOUNDARY_FILE, allow(&["*"], &["*"]).to_string());
    let report = check_recording_dir(&dir).expect("all allowed");
    assert_eq!(report.roles["worker-a"].allowed, 5);
    // The boundary caps the worker: no queue action.
    write(
        WORKER_BOUNDARY_FILE,
        allow(&["dynamodb:*", "sns:*"], &["*"]).to_string(),
    );
    let error = check_recording_dir(&dir).expect_err("capped");
    assert!(error.to_string().contains("sqs:DeleteMessage"), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}
