// Package robots delivers alert notifications to the chat robots
// Alertmanager lacks: Feishu (Lark) custom bots, DingTalk custom robots and
// WeCom (WeChat Work) group robots. Each robot config becomes an
// Alertmanager notify.Integration, so alerting/notify runs them in
// Alertmanager's own pipeline (grouping, inhibition, silences, the
// notification log, retries) next to Alertmanager's receivers.
//
// # Configuration
//
// Users keep their alertmanager.yml and add robot configs to receivers:
//
//	receivers:
//	  - name: oncall-cn
//	    feishu_configs:
//	      - webhook_url: https://open.feishu.cn/open-apis/bot/v2/hook/xxxx
//	        secret: s3cret            # optional: signs each request
//	    dingtalk_configs:
//	      - webhook_url: https://oapi.dingtalk.com/robot/send?access_token=xxxx
//	        secret_file: /etc/vigil/dingtalk.secret
//	    wecom_robot_configs:
//	      - webhook_url_file: /etc/vigil/wecom.url
//	        max_alerts: 20
//	    webhook_configs:              # Alertmanager's receivers still work
//	      - url: http://127.0.0.1:9000/hook
//
// Every robot config takes:
//
//   - webhook_url or webhook_url_file (exactly one): the robot's webhook,
//     which holds its token; it is never shown when the configuration is
//     printed, nor in errors. Files are read when the configuration is
//     loaded; relative paths are taken from the configuration file's
//     directory once the loader calls Receiver.SetDirectory.
//   - secret or secret_file (Feishu and DingTalk, optional): the signing
//     secret of a robot whose security setting is "signature".
//   - send_resolved (default true).
//   - title and message: Alertmanager templates over its usual data
//     (.Status, .Alerts, .CommonLabels, .CommonAnnotations, .ExternalURL …).
//     The defaults (DefaultTitle, DefaultMessage) show the status and alert
//     name, then per alert its severity, summary and description
//     annotations, labels and start time, and a link to Vigil's alerts page.
//     Labels and annotations may be in any language; for local times write
//     {{ .StartsAt | tz "Asia/Shanghai" | date "2006-01-02 15:04:05" }}. A
//     DingTalk robot guarded by keywords needs a keyword in the title or
//     message.
//   - max_alerts: the most alerts listed in one message (0 = all that fit).
//   - http_config: the HTTP client (proxy, TLS); by default the file's
//     global.http_config.
//
// Alertmanager's config.Load refuses unknown keys, so Split takes the
// robot keys out of the file before Alertmanager reads the rest, and
// validates them: unknown keys in a robot config are errors too, and errors
// name the receiver, the key and the line. Robot configs must be listed in
// the receiver itself, not brought in with a YAML merge key (<<). The
// caller then builds each receiver's integrations: Alertmanager's own
// (config/receiver.BuildReceiverIntegrations), then Receiver.Integrations
// with indexes continuing after them (see the package example).
//
// # Delivery
//
// A message lists firing alerts first. When it would exceed the robot's
// size limit (Feishu's 20 KB body, DingTalk's 20 000-byte text, WeCom's
// 4096-byte content), or lists more than max_alerts, it is cut between
// alerts, on a line boundary and without breaking a UTF-8 character, and
// ends with "…and N more".
//
// The robots allow about 20 messages a minute (Feishu 5 a second and 100 a
// minute). Notifiers posting to the same URL share a token bucket
// (Limiters) shaped to stay within that; a message waits for its token
// within the notification's context, or fails with a retryable error when
// the context would end first.
//
// A robot answers HTTP 200 even when it refuses a message, with a non-zero
// code in the body. Rate limits (Feishu 11232, DingTalk 130101, WeCom
// 45009, or a 429) also hold back every message to that URL, from every
// notifier sharing its Limiters, for the robot's throttle (DingTalk blocks
// a robot for ten minutes; Feishu and WeCom count per minute) or the
// 429's Retry-After. Rate limits, busy servers, 429 and 5xx are retried
// by Alertmanager's retry stage; a bad signature, key or missing keyword (Feishu 19021, DingTalk
// 310000, WeCom 93000) and other client errors are not.
package robots
