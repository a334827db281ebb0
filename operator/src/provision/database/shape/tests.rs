//! Plans between declared and described tables, as tables of cases.

use super::*;
use crate::provision::database::requests::projection_all;
use movieapp_model::{MOVIES, TABLES, USERS, WATCHLISTS};

fn spec(billing: BillingMode) -> DatabaseSpec {
    let provisioned = billing == BillingMode::Provisioned;
    DatabaseSpec {
        billing_mode: billing,
        read_capacity_units: provisioned.then_some(5),
        write_capacity_units: provisioned.then_some(3),
        ..DatabaseSpec::default()
    }
}

/// The shape DescribeTable would report for a table created as desired.
fn shape_of(desired: &DesiredTable) -> TableShape {
    let capacity = match desired.billing {
        Billing::OnDemand => (0, 0),
        Billing::Provisioned { read, write } => (read, write),
    };
    TableShape {
        status: "ACTIVE".into(),
        keys: desired.keys.clone(),
        billing: desired.billing,
        indexes: desired
            .indexes
            .iter()
            .map(|i| IndexShape {
                name: i.name.clone(),
                keys: i.keys.clone(),
                projects_all: true,
                status: "ACTIVE".into(),
                capacity,
            })
            .collect(),
        encryption: desired.encryption,
        deletion_protection: desired.deletion_protection,
    }
}

#[test]
fn a_table_as_declared_needs_no_change() {
    for table in TABLES {
        for billing in [BillingMode::PayPerRequest, BillingMode::Provisioned] {
            let desired = DesiredTable::new(&table, &spec(billing), false);
            assert_eq!(
                plan(&desired, &shape_of(&desired)),
                Ok(None),
                "{}",
                table.component
            );
        }
    }
}

#[test]
fn desired_tables_follow_the_model() {
    let desired = DesiredTable::new(&WATCHLISTS, &spec(BillingMode::PayPerRequest), false);
    assert_eq!(
        desired.keys,
        [
            KeyPart {
                name: "userId".into(),
                kind: "S".into(),
                range: false
            },
            KeyPart {
                name: "movieId".into(),
                kind: "N".into(),
                range: true
            },
        ]
    );
    assert_eq!(desired.indexes.len(), 1);
    assert_eq!(desired.indexes[0].name, "by-movie");
    assert_eq!(desired.indexes[0].keys[0].name, "movieId");
    assert_eq!(desired.billing, Billing::OnDemand);
    assert!(desired.point_in_time_recovery);
    assert_eq!(
        DesiredTable::new(&MOVIES, &DatabaseSpec::default(), false)
            .ttl_attribute
            .as_deref(),
        Some("expiresAt")
    );
    assert_eq!(
        DesiredTable::new(&USERS, &spec(BillingMode::Provisioned), false).billing,
        Billing::Provisioned { read: 5, write: 3 }
    );
}

#[test]
fn switching_to_provisioned_sets_every_index_in_the_same_call() {
    let on_demand = DesiredTable::new(&WATCHLISTS, &spec(BillingMode::PayPerRequest), false);
    let provisioned = DesiredTable::new(&WATCHLISTS, &spec(BillingMode::Provisioned), false);
    let change = plan(&provisioned, &shape_of(&on_demand));
    assert_eq!(
        change,
        Ok(Some(TableChange::Capacity {
            table: Some(Billing::Provisioned { read: 5, write: 3 }),
            indexes: vec!["by-movie".into()],
        }))
    );
    // And back: billing only (on-demand indexes carry no capacity).
    assert_eq!(
        plan(&on_demand, &shape_of(&provisioned)),
        Ok(Some(TableChange::Capacity {
            table: Some(Billing::OnDemand),
            indexes: vec![],
        }))
    );
}

#[test]
fn capacity_changes_touch_only_what_differs() {
    let desired = DesiredTable::new(&WATCHLISTS, &spec(BillingMode::Provisioned), false);
    let mut actual = shape_of(&desired);
    actual.indexes[0].capacity = (1, 1);
    assert_eq!(
        plan(&desired, &actual),
        Ok(Some(TableChange::Capacity {
            table: None,
            indexes: vec!["by-movie".into()]
        }))
    );
    let mut actual = shape_of(&desired);
    actual.billing = Billing::Provisioned { read: 5, write: 10 };
    assert_eq!(
        plan(&desired, &actual),
        Ok(Some(TableChange::Capacity {
            table: Some(Billing::Provisioned { read: 5, write: 3 }),
            indexes: vec![]
        }))
    );
    // On-demand tables report capacity 5/5 in moto after a switch: ignored.
    let on_demand = DesiredTable::new(&WATCHLISTS, &spec(BillingMode::PayPerRequest), false);
    let mut actual = shape_of(&on_demand);
    actual.indexes[0].capacity = (5, 5);
    assert_eq!(plan(&on_demand, &actual), Ok(None));
}

#[test]
fn index_changes_come_one_at_a_time_deletes_first() {
    let desired = DesiredTable::new(&WATCHLISTS, &spec(BillingMode::PayPerRequest), false);
    let mut actual = shape_of(&desired);
    actual.indexes.clear();
    assert_eq!(
        plan(&desired, &actual),
        Ok(Some(TableChange::CreateIndex(desired.indexes[0].clone())))
    );

    let mut actual = shape_of(&desired);
    actual.indexes.push(IndexShape {
        name: "by-someone".into(),
        keys: desired.keys.clone(),
        projects_all: true,
        status: "ACTIVE".into(),
        capacity: (0, 0),
    });
    assert_eq!(
        plan(&desired, &actual),
        Ok(Some(TableChange::DeleteIndex("by-someone".into())))
    );

    // Same name, other keys or projection: delete now, create next.
    let mut actual = shape_of(&desired);
    actual.indexes[0].projects_all = false;
    assert_eq!(
        plan(&desired, &actual),
        Ok(Some(TableChange::DeleteIndex("by-movie".into())))
    );
    actual.indexes.clear();
    assert!(matches!(
        plan(&desired, &actual),
        Ok(Some(TableChange::CreateIndex(_)))
    ));
}

#[test]
fn billing_comes_before_creating_an_index() {
    let desired = DesiredTable::new(&WATCHLISTS, &spec(BillingMode::Provisioned), false);
    let mut actual = shape_of(&DesiredTable::new(
        &WATCHLISTS,
        &spec(BillingMode::PayPerRequest),
        false,
    ));
    actual.indexes.clear();
    assert!(matches!(
        plan(&desired, &actual),
        Ok(Some(TableChange::Capacity { table: Some(_), .. }))
    ));
}

#[test]
fn encryption_is_compared() {
    let mut database = spec(BillingMode::PayPerRequest);
    database.encryption = TableEncryption::Kms;
    let desired = DesiredTable::new(&USERS, &database, false);
    let mut actual = shape_of(&desired);
    actual.encryption = Encryption::AwsOwned;
    assert_eq!(
        plan(&desired, &actual),
        Ok(Some(TableChange::Encryption(Encryption::Kms)))
    );
}

#[test]
fn a_different_key_schema_cannot_be_fixed() {
    let desired = DesiredTable::new(&WATCHLISTS, &spec(BillingMode::PayPerRequest), false);
    let mut actual = shape_of(&desired);
    actual.keys[1].kind = "S".into();
    let error = plan(&desired, &actual).expect_err("incompatible");
    assert!(error.contains("movieId (S, sort)"), "{error}");
}

#[test]
fn nothing_is_changed_while_the_table_or_an_index_is_busy() {
    let desired = DesiredTable::new(&WATCHLISTS, &spec(BillingMode::PayPerRequest), false);
    let mut actual = shape_of(&desired);
    assert_eq!(actual.busy(), None);
    actual.status = "CREATING".into();
    assert_eq!(actual.busy().map(|b| b.0), Some(Reason::Creating));
    actual.status = "UPDATING".into();
    assert_eq!(actual.busy().map(|b| b.0), Some(Reason::Updating));
    let mut actual = shape_of(&desired);
    actual.indexes[0].status = "CREATING".into();
    assert_eq!(
        actual.busy(),
        Some((Reason::Updating, "index by-movie is CREATING".into()))
    );
}

#[test]
fn shapes_are_read_from_describe_table() {
    let key = |name: &str, kind: ddb::KeyType| {
        ddb::KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .expect("key")
    };
    let attribute = |name: &str, kind: ddb::ScalarAttributeType| {
        ddb::AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(kind)
            .build()
            .expect("attribute")
    };
    let description = ddb::TableDescription::builder()
        .table_status(ddb::TableStatus::Active)
        // Listed sort key first: the shape still puts the partition key first.
        .key_schema(key("movieId", ddb::KeyType::Range))
        .key_schema(key("userId", ddb::KeyType::Hash))
        .attribute_definitions(attribute("userId", ddb::ScalarAttributeType::S))
        .attribute_definitions(attribute("movieId", ddb::ScalarAttributeType::N))
        .billing_mode_summary(
            ddb::BillingModeSummary::builder()
                .billing_mode(ddb::BillingMode::PayPerRequest)
                .build(),
        )
        .provisioned_throughput(
            ddb::ProvisionedThroughputDescription::builder()
                .read_capacity_units(0)
                .write_capacity_units(0)
                .build(),
        )
        .global_secondary_indexes(
            ddb::GlobalSecondaryIndexDescription::builder()
                .index_name("by-movie")
                .key_schema(key("movieId", ddb::KeyType::Hash))
                .key_schema(key("userId", ddb::KeyType::Range))
                .projection(projection_all())
                .index_status(ddb::IndexStatus::Active)
                .build(),
        )
        .build();
    let shape = TableShape::from_description(&description);
    let desired = DesiredTable::new(&WATCHLISTS, &spec(BillingMode::PayPerRequest), false);
    assert_eq!(shape.encryption, Encryption::AwsOwned);
    assert_eq!(plan(&desired, &shape), Ok(None));

    // No billing summary: a PROVISIONED table from before on-demand.
    let old = ddb::TableDescription::builder()
        .table_status(ddb::TableStatus::Active)
        .provisioned_throughput(
            ddb::ProvisionedThroughputDescription::builder()
                .read_capacity_units(5)
                .write_capacity_units(3)
                .build(),
        )
        .sse_description(
            ddb::SseDescription::builder()
                .status(ddb::SseStatus::Enabled)
                .sse_type(ddb::SseType::Kms)
                .build(),
        )
        .build();
    let shape = TableShape::from_description(&old);
    assert_eq!(shape.billing, Billing::Provisioned { read: 5, write: 3 });
    assert_eq!(shape.encryption, Encryption::Kms);
}

#[test]
fn deletion_protection_is_compared_and_switched_on_before_anything_else() {
    let protected = DesiredTable::new(&WATCHLISTS, &spec(BillingMode::Provisioned), true);
    let mut actual = shape_of(&DesiredTable::new(
        &WATCHLISTS,
        &spec(BillingMode::PayPerRequest),
        false,
    ));
    // Billing differs too, but protection goes on first.
    assert_eq!(
        plan(&protected, &actual),
        Ok(Some(TableChange::DeletionProtection(true)))
    );
    actual.deletion_protection = true;
    assert!(matches!(
        plan(&protected, &actual),
        Ok(Some(TableChange::Capacity { .. }))
    ));
    // Off once everything else matches.
    let unprotected = DesiredTable::new(&WATCHLISTS, &spec(BillingMode::PayPerRequest), false);
    let mut actual = shape_of(&unprotected);
    actual.deletion_protection = true;
    actual.encryption = Encryption::Kms;
    assert_eq!(
        plan(&unprotected, &actual),
        Ok(Some(TableChange::Encryption(Encryption::AwsOwned)))
    );
    actual.encryption = Encryption::AwsOwned;
    assert_eq!(
        plan(&unprotected, &actual),
        Ok(Some(TableChange::DeletionProtection(false)))
    );
    assert_eq!(
        TableChange::DeletionProtection(false).describe(),
        "disabled deletion protection"
    );
}

#[test]
fn deletion_protection_is_read_from_the_description() {
    let description = |enabled: Option<bool>| {
        ddb::TableDescription::builder()
            .table_status(ddb::TableStatus::Active)
            .set_deletion_protection_enabled(enabled)
            .build()
    };
    assert!(TableShape::from_description(&description(Some(true))).deletion_protection);
    assert!(!TableShape::from_description(&description(Some(false))).deletion_protection);
    // Tables described before the attribute existed are unprotected.
    assert!(!TableShape::from_description(&description(None)).deletion_protection);
}

/// An observe-only pass lists every change by planning on the shape each
/// change would leave: from any drifted shape, that ends where the plan
/// has nothing left, in as many steps as a managing pass would take.
#[test]
fn assumed_changes_lead_to_a_shape_that_needs_none() {
    let provisioned = DesiredTable::new(&WATCHLISTS, &spec(BillingMode::Provisioned), false);
    let on_demand = DesiredTable::new(&WATCHLISTS, &spec(BillingMode::PayPerRequest), false);
    let mut wrong_index = shape_of(&on_demand);
    wrong_index.indexes[0].projects_all = false;
    wrong_index.encryption = Encryption::Kms;
    let mut no_index = shape_of(&provisioned);
    no_index.indexes.clear();
    let protected = DesiredTable::new(&WATCHLISTS, &spec(BillingMode::Provisioned), true);
    let mut protected_on_demand = shape_of(&on_demand);
    protected_on_demand.deletion_protection = true;
    for (case, desired, start, steps) in [
        ("to provisioned", &provisioned, shape_of(&on_demand), 1),
        (
            "protection on, then billing",
            &protected,
            shape_of(&on_demand),
            2,
        ),
        (
            "billing, then protection off",
            &provisioned,
            protected_on_demand,
            2,
        ),
        ("to on-demand", &on_demand, shape_of(&provisioned), 1),
        ("index and encryption", &on_demand, wrong_index, 3),
        ("missing index", &provisioned, no_index, 1),
    ] {
        let mut shape = start;
        let mut changes = Vec::new();
        while let Some(change) = plan(desired, &shape).expect("compatible") {
            assert!(changes.len() < 10, "{case}: no end to {changes:?}");
            shape = assume(&shape, &change);
            changes.push(change);
        }
        assert_eq!(changes.len(), steps, "{case}: {changes:?}");
    }
}
