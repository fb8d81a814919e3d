// Package alertstore keeps the state of Vigil's notification delivery
// (alerting/notify) in PostgreSQL, so that it survives a restart and is
// shared by every replica:
//
//   - Alertmanager's silences and notification log, as the deltas its
//     gossip would carry (AppendDelta, ReadState) and periodic snapshots
//     (WriteSnapshot), kept apart by a kind string;
//   - the alerts posted to any replica, one row per fingerprint with an
//     ordering revision (PutAlerts, AlertsAfter);
//   - the notification history: one row per delivery attempt
//     (RecordNotifications, Notifications, DeleteNotificationsBefore);
//   - the evaluation state of each rule group, as the replica that
//     evaluates the rules (alerting/rules) last wrote it, for the other
//     replicas' APIs (PutRuleGroupState, RuleGroupStates).
//
// The store does not interpret the payloads: alerting/notify encodes and
// decodes them. Errors come back classified by pgcore (storage.ErrUnavailable
// when the database cannot serve). The schema is migrations/0008_notify
// and 0016_rule_group_state.
package alertstore
