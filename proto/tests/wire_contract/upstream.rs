//! The upstream wire facts the tests in `wire_contract.rs` compare against, as tables
//! (see that file's docs for where they were read and the row format).

pub(crate) const PACKAGE: &str = "apache.rocketmq.v2";
pub(crate) const DEFINITION: &str = "apache/rocketmq/v2/definition.proto";
pub(crate) const SERVICE: &str = "apache/rocketmq/v2/service.proto";

pub(crate) type Field = (i32, &'static str, &'static str, &'static str);
pub(crate) type Msg = (&'static str, &'static [Field]);
pub(crate) type Enum = (&'static str, &'static [(&'static str, i32)]);

/// `service MessagingService`: (rpc, input, output, client streaming, server streaming).
#[rustfmt::skip]
pub(crate) const RPCS: &[(&str, &str, &str, bool, bool)] = &[
    ("QueryRoute", "QueryRouteRequest", "QueryRouteResponse", false, false),
    ("Heartbeat", "HeartbeatRequest", "HeartbeatResponse", false, false),
    ("SendMessage", "SendMessageRequest", "SendMessageResponse", false, false),
    ("QueryAssignment", "QueryAssignmentRequest", "QueryAssignmentResponse", false, false),
    ("ReceiveMessage", "ReceiveMessageRequest", "ReceiveMessageResponse", false, true),
    ("AckMessage", "AckMessageRequest", "AckMessageResponse", false, false),
    ("ForwardMessageToDeadLetterQueue", "ForwardMessageToDeadLetterQueueRequest", "ForwardMessageToDeadLetterQueueResponse", false, false),
    ("PullMessage", "PullMessageRequest", "PullMessageResponse", false, true),
    ("UpdateOffset", "UpdateOffsetRequest", "UpdateOffsetResponse", false, false),
    ("GetOffset", "GetOffsetRequest", "GetOffsetResponse", false, false),
    ("QueryOffset", "QueryOffsetRequest", "QueryOffsetResponse", false, false),
    ("EndTransaction", "EndTransactionRequest", "EndTransactionResponse", false, false),
    ("Telemetry", "TelemetryCommand", "TelemetryCommand", true, true),
    ("NotifyClientTermination", "NotifyClientTerminationRequest", "NotifyClientTerminationResponse", false, false),
    ("ChangeInvisibleDuration", "ChangeInvisibleDurationRequest", "ChangeInvisibleDurationResponse", false, false),
    ("RecallMessage", "RecallMessageRequest", "RecallMessageResponse", false, false),
    ("SyncLiteSubscription", "SyncLiteSubscriptionRequest", "SyncLiteSubscriptionResponse", false, false),
];

/// Messages of definition.proto.
#[rustfmt::skip]
pub(crate) const DEFINITION_MESSAGES: &[Msg] = &[
    ("FilterExpression", &[
        (1, "type", "FilterType", ""),
        (2, "expression", "string", ""),
    ]),
    ("RetryPolicy", &[
        (1, "max_attempts", "int32", ""),
        (2, "exponential_backoff", "ExponentialBackoff", "oneof:strategy"),
        (3, "customized_backoff", "CustomizedBackoff", "oneof:strategy"),
    ]),
    ("ExponentialBackoff", &[
        (1, "initial", "google.protobuf.Duration", ""),
        (2, "max", "google.protobuf.Duration", ""),
        (3, "multiplier", "float", ""),
    ]),
    ("CustomizedBackoff", &[
        (1, "next", "google.protobuf.Duration", "rep"),
    ]),
    ("Resource", &[
        (1, "resource_namespace", "string", ""),
        (2, "name", "string", ""),
    ]),
    ("SubscriptionEntry", &[
        (1, "topic", "Resource", ""),
        (2, "expression", "FilterExpression", ""),
    ]),
    ("Address", &[
        (1, "host", "string", ""),
        (2, "port", "int32", ""),
    ]),
    ("Endpoints", &[
        (1, "scheme", "AddressScheme", ""),
        (2, "addresses", "Address", "rep"),
    ]),
    ("Broker", &[
        (1, "name", "string", ""),
        (2, "id", "int32", ""),
        (3, "endpoints", "Endpoints", ""),
    ]),
    ("MessageQueue", &[
        (1, "topic", "Resource", ""),
        (2, "id", "int32", ""),
        (3, "permission", "Permission", ""),
        (4, "broker", "Broker", ""),
        (5, "accept_message_types", "MessageType", "rep"),
    ]),
    ("Digest", &[
        (1, "type", "DigestType", ""),
        (2, "checksum", "string", ""),
    ]),
    ("SystemProperties", &[
        (1, "tag", "string", "opt"),
        (2, "keys", "string", "rep"),
        (3, "message_id", "string", ""),
        (4, "body_digest", "Digest", ""),
        (5, "body_encoding", "Encoding", ""),
        (6, "message_type", "MessageType", ""),
        (7, "born_timestamp", "google.protobuf.Timestamp", ""),
        (8, "born_host", "string", ""),
        (9, "store_timestamp", "google.protobuf.Timestamp", "opt"),
        (10, "store_host", "string", ""),
        (11, "delivery_timestamp", "google.protobuf.Timestamp", "opt"),
        (12, "receipt_handle", "string", "opt"),
        (13, "queue_id", "int32", ""),
        (14, "queue_offset", "int64", "opt"),
        (15, "invisible_duration", "google.protobuf.Duration", "opt"),
        (16, "delivery_attempt", "int32", "opt"),
        (17, "message_group", "string", "opt"),
        (18, "trace_context", "string", "opt"),
        (19, "orphaned_transaction_recovery_duration", "google.protobuf.Duration", "opt"),
        (20, "dead_letter_queue", "DeadLetterQueue", "opt"),
        (21, "lite_topic", "string", "opt"),
        (22, "priority", "int32", "opt"),
    ]),
    ("DeadLetterQueue", &[
        (1, "topic", "string", ""),
        (2, "message_id", "string", ""),
    ]),
    ("Message", &[
        (1, "topic", "Resource", ""),
        (2, "user_properties", "map<string,string>", "map"),
        (3, "system_properties", "SystemProperties", ""),
        (4, "body", "bytes", ""),
    ]),
    ("Assignment", &[
        (1, "message_queue", "MessageQueue", ""),
    ]),
    ("Status", &[
        (1, "code", "Code", ""),
        (2, "message", "string", ""),
    ]),
    ("UA", &[
        (1, "language", "Language", ""),
        (2, "version", "string", ""),
        (3, "platform", "string", ""),
        (4, "hostname", "string", ""),
    ]),
    ("Settings", &[
        (1, "client_type", "ClientType", "opt"),
        (2, "access_point", "Endpoints", "opt"),
        (3, "backoff_policy", "RetryPolicy", "opt"),
        (4, "request_timeout", "google.protobuf.Duration", "opt"),
        (5, "publishing", "Publishing", "oneof:pub_sub"),
        (6, "subscription", "Subscription", "oneof:pub_sub"),
        (7, "user_agent", "UA", ""),
        (8, "metric", "Metric", ""),
        (9, "client_properties", "map<string,string>", "map"),
    ]),
    ("Publishing", &[
        (1, "topics", "Resource", "rep"),
        (2, "max_body_size", "int32", ""),
        (3, "validate_message_type", "bool", ""),
    ]),
    ("Subscription", &[
        (1, "group", "Resource", "opt"),
        (2, "subscriptions", "SubscriptionEntry", "rep"),
        (3, "fifo", "bool", "opt"),
        (4, "receive_batch_size", "int32", "opt"),
        (5, "long_polling_timeout", "google.protobuf.Duration", "opt"),
        (6, "lite_subscription_quota", "int32", "opt"),
        (7, "max_lite_topic_size", "int32", "opt"),
    ]),
    ("Metric", &[
        (1, "on", "bool", ""),
        (2, "endpoints", "Endpoints", "opt"),
    ]),
    ("OffsetOption", &[
        (1, "policy", "OffsetOption.Policy", "oneof:offset_type"),
        (2, "offset", "int64", "oneof:offset_type"),
        (3, "tail_n", "int64", "oneof:offset_type"),
        (4, "timestamp", "int64", "oneof:offset_type"),
    ]),];

/// Messages of service.proto.
#[rustfmt::skip]
pub(crate) const SERVICE_MESSAGES: &[Msg] = &[
    ("QueryRouteRequest", &[
        (1, "topic", "Resource", ""),
        (2, "endpoints", "Endpoints", ""),
    ]),
    ("QueryRouteResponse", &[
        (1, "status", "Status", ""),
        (2, "message_queues", "MessageQueue", "rep"),
    ]),
    ("SendMessageRequest", &[
        (1, "messages", "Message", "rep"),
    ]),
    ("SendResultEntry", &[
        (1, "status", "Status", ""),
        (2, "message_id", "string", ""),
        (3, "transaction_id", "string", ""),
        (4, "offset", "int64", ""),
        (5, "recall_handle", "string", ""),
    ]),
    ("SendMessageResponse", &[
        (1, "status", "Status", ""),
        (2, "entries", "SendResultEntry", "rep"),
    ]),
    ("QueryAssignmentRequest", &[
        (1, "topic", "Resource", ""),
        (2, "group", "Resource", ""),
        (3, "endpoints", "Endpoints", ""),
    ]),
    ("QueryAssignmentResponse", &[
        (1, "status", "Status", ""),
        (2, "assignments", "Assignment", "rep"),
    ]),
    ("ReceiveMessageRequest", &[
        (1, "group", "Resource", ""),
        (2, "message_queue", "MessageQueue", ""),
        (3, "filter_expression", "FilterExpression", ""),
        (4, "batch_size", "int32", ""),
        (5, "invisible_duration", "google.protobuf.Duration", "opt"),
        (6, "auto_renew", "bool", ""),
        (7, "long_polling_timeout", "google.protobuf.Duration", "opt"),
        (8, "attempt_id", "string", "opt"),
    ]),
    ("ReceiveMessageResponse", &[
        (1, "status", "Status", "oneof:content"),
        (2, "message", "Message", "oneof:content"),
        (3, "delivery_timestamp", "google.protobuf.Timestamp", "oneof:content"),
    ]),
    ("AckMessageEntry", &[
        (1, "message_id", "string", ""),
        (2, "receipt_handle", "string", ""),
        (3, "lite_topic", "string", "opt"),
    ]),
    ("AckMessageRequest", &[
        (1, "group", "Resource", ""),
        (2, "topic", "Resource", ""),
        (3, "entries", "AckMessageEntry", "rep"),
    ]),
    ("AckMessageResultEntry", &[
        (1, "message_id", "string", ""),
        (2, "receipt_handle", "string", ""),
        (3, "status", "Status", ""),
    ]),
    ("AckMessageResponse", &[
        (1, "status", "Status", ""),
        (2, "entries", "AckMessageResultEntry", "rep"),
    ]),
    ("ForwardMessageToDeadLetterQueueRequest", &[
        (1, "group", "Resource", ""),
        (2, "topic", "Resource", ""),
        (3, "receipt_handle", "string", ""),
        (4, "message_id", "string", ""),
        (5, "delivery_attempt", "int32", ""),
        (6, "max_delivery_attempts", "int32", ""),
        (7, "lite_topic", "string", "opt"),
    ]),
    ("ForwardMessageToDeadLetterQueueResponse", &[
        (1, "status", "Status", ""),
    ]),
    ("HeartbeatRequest", &[
        (1, "group", "Resource", "opt"),
        (2, "client_type", "ClientType", ""),
    ]),
    ("HeartbeatResponse", &[
        (1, "status", "Status", ""),
    ]),
    ("EndTransactionRequest", &[
        (1, "topic", "Resource", ""),
        (2, "message_id", "string", ""),
        (3, "transaction_id", "string", ""),
        (4, "resolution", "TransactionResolution", ""),
        (5, "source", "TransactionSource", ""),
        (6, "trace_context", "string", ""),
    ]),
    ("EndTransactionResponse", &[
        (1, "status", "Status", ""),
    ]),
    ("PrintThreadStackTraceCommand", &[
        (1, "nonce", "string", ""),
    ]),
    ("ReconnectEndpointsCommand", &[
        (1, "nonce", "string", ""),
    ]),
    ("ThreadStackTrace", &[
        (1, "nonce", "string", ""),
        (2, "thread_stack_trace", "string", "opt"),
    ]),
    ("VerifyMessageCommand", &[
        (1, "nonce", "string", ""),
        (2, "message", "Message", ""),
    ]),
    ("VerifyMessageResult", &[
        (1, "nonce", "string", ""),
    ]),
    ("RecoverOrphanedTransactionCommand", &[
        (1, "message", "Message", ""),
        (2, "transaction_id", "string", ""),
    ]),
    ("NotifyUnsubscribeLiteCommand", &[
        (1, "lite_topic", "string", ""),
    ]),
    ("TelemetryCommand", &[
        (1, "status", "Status", "opt"),
        (2, "settings", "Settings", "oneof:command"),
        (3, "thread_stack_trace", "ThreadStackTrace", "oneof:command"),
        (4, "verify_message_result", "VerifyMessageResult", "oneof:command"),
        (5, "recover_orphaned_transaction_command", "RecoverOrphanedTransactionCommand", "oneof:command"),
        (6, "print_thread_stack_trace_command", "PrintThreadStackTraceCommand", "oneof:command"),
        (7, "verify_message_command", "VerifyMessageCommand", "oneof:command"),
        (8, "reconnect_endpoints_command", "ReconnectEndpointsCommand", "oneof:command"),
        (9, "notify_unsubscribe_lite_command", "NotifyUnsubscribeLiteCommand", "oneof:command"),
    ]),
    ("NotifyClientTerminationRequest", &[
        (1, "group", "Resource", "opt"),
    ]),
    ("NotifyClientTerminationResponse", &[
        (1, "status", "Status", ""),
    ]),
    ("ChangeInvisibleDurationRequest", &[
        (1, "group", "Resource", ""),
        (2, "topic", "Resource", ""),
        (3, "receipt_handle", "string", ""),
        (4, "invisible_duration", "google.protobuf.Duration", ""),
        (5, "message_id", "string", ""),
        (6, "lite_topic", "string", "opt"),
        (7, "suspend", "bool", "opt"),
    ]),
    ("ChangeInvisibleDurationResponse", &[
        (1, "status", "Status", ""),
        (2, "receipt_handle", "string", ""),
    ]),
    ("PullMessageRequest", &[
        (1, "group", "Resource", ""),
        (2, "message_queue", "MessageQueue", ""),
        (3, "offset", "int64", ""),
        (4, "batch_size", "int32", ""),
        (5, "filter_expression", "FilterExpression", ""),
        (6, "long_polling_timeout", "google.protobuf.Duration", ""),
    ]),
    ("PullMessageResponse", &[
        (1, "status", "Status", "oneof:content"),
        (2, "message", "Message", "oneof:content"),
        (3, "next_offset", "int64", "oneof:content"),
    ]),
    ("UpdateOffsetRequest", &[
        (1, "group", "Resource", ""),
        (2, "message_queue", "MessageQueue", ""),
        (3, "offset", "int64", ""),
    ]),
    ("UpdateOffsetResponse", &[
        (1, "status", "Status", ""),
    ]),
    ("GetOffsetRequest", &[
        (1, "group", "Resource", ""),
        (2, "message_queue", "MessageQueue", ""),
    ]),
    ("GetOffsetResponse", &[
        (1, "status", "Status", ""),
        (2, "offset", "int64", ""),
    ]),
    ("QueryOffsetRequest", &[
        (1, "message_queue", "MessageQueue", ""),
        (2, "query_offset_policy", "QueryOffsetPolicy", ""),
        (3, "timestamp", "google.protobuf.Timestamp", "opt"),
    ]),
    ("QueryOffsetResponse", &[
        (1, "status", "Status", ""),
        (2, "offset", "int64", ""),
    ]),
    ("RecallMessageRequest", &[
        (1, "topic", "Resource", ""),
        (2, "recall_handle", "string", ""),
    ]),
    ("RecallMessageResponse", &[
        (1, "status", "Status", ""),
        (2, "message_id", "string", ""),
    ]),
    ("SyncLiteSubscriptionRequest", &[
        (1, "action", "LiteSubscriptionAction", ""),
        (2, "topic", "Resource", ""),
        (3, "group", "Resource", ""),
        (4, "lite_topic_set", "string", "rep"),
        (5, "version", "int64", "opt"),
        (6, "offset_option", "OffsetOption", "opt"),
    ]),
    ("SyncLiteSubscriptionResponse", &[
        (1, "status", "Status", ""),
    ]),
];

/// Enums (all live in definition.proto); a nested enum is `Outer.Inner`.
#[rustfmt::skip]
pub(crate) const ENUMS: &[Enum] = &[
    ("TransactionResolution", &[
        ("TRANSACTION_RESOLUTION_UNSPECIFIED", 0),
        ("COMMIT", 1),
        ("ROLLBACK", 2),
    ]),
    ("TransactionSource", &[
        ("SOURCE_UNSPECIFIED", 0),
        ("SOURCE_CLIENT", 1),
        ("SOURCE_SERVER_CHECK", 2),
    ]),
    ("Permission", &[
        ("PERMISSION_UNSPECIFIED", 0),
        ("NONE", 1),
        ("READ", 2),
        ("WRITE", 3),
        ("READ_WRITE", 4),
    ]),
    ("FilterType", &[
        ("FILTER_TYPE_UNSPECIFIED", 0),
        ("TAG", 1),
        ("SQL", 2),
    ]),
    ("AddressScheme", &[
        ("ADDRESS_SCHEME_UNSPECIFIED", 0),
        ("IPv4", 1),
        ("IPv6", 2),
        ("DOMAIN_NAME", 3),
    ]),
    ("MessageType", &[
        ("MESSAGE_TYPE_UNSPECIFIED", 0),
        ("NORMAL", 1),
        ("FIFO", 2),
        ("DELAY", 3),
        ("TRANSACTION", 4),
        ("LITE", 5),
        ("PRIORITY", 6),
    ]),
    ("DigestType", &[
        ("DIGEST_TYPE_UNSPECIFIED", 0),
        ("CRC32", 1),
        ("MD5", 2),
        ("SHA1", 3),
    ]),
    ("ClientType", &[
        ("CLIENT_TYPE_UNSPECIFIED", 0),
        ("PRODUCER", 1),
        ("PUSH_CONSUMER", 2),
        ("SIMPLE_CONSUMER", 3),
        ("PULL_CONSUMER", 4),
        ("LITE_PUSH_CONSUMER", 5),
        ("LITE_SIMPLE_CONSUMER", 6),
    ]),
    ("Encoding", &[
        ("ENCODING_UNSPECIFIED", 0),
        ("IDENTITY", 1),
        ("GZIP", 2),
    ]),
    ("Code", &[
        ("CODE_UNSPECIFIED", 0),
        ("OK", 20000),
        ("MULTIPLE_RESULTS", 30000),
        ("BAD_REQUEST", 40000),
        ("ILLEGAL_ACCESS_POINT", 40001),
        ("ILLEGAL_TOPIC", 40002),
        ("ILLEGAL_CONSUMER_GROUP", 40003),
        ("ILLEGAL_MESSAGE_TAG", 40004),
        ("ILLEGAL_MESSAGE_KEY", 40005),
        ("ILLEGAL_MESSAGE_GROUP", 40006),
        ("ILLEGAL_MESSAGE_PROPERTY_KEY", 40007),
        ("INVALID_TRANSACTION_ID", 40008),
        ("ILLEGAL_MESSAGE_ID", 40009),
        ("ILLEGAL_FILTER_EXPRESSION", 40010),
        ("ILLEGAL_INVISIBLE_TIME", 40011),
        ("ILLEGAL_DELIVERY_TIME", 40012),
        ("INVALID_RECEIPT_HANDLE", 40013),
        ("MESSAGE_PROPERTY_CONFLICT_WITH_TYPE", 40014),
        ("UNRECOGNIZED_CLIENT_TYPE", 40015),
        ("MESSAGE_CORRUPTED", 40016),
        ("CLIENT_ID_REQUIRED", 40017),
        ("ILLEGAL_POLLING_TIME", 40018),
        ("ILLEGAL_OFFSET", 40019),
        ("ILLEGAL_LITE_TOPIC", 40020),
        ("INVALID_CLIENT_PROPERTIES", 40021),
        ("UNAUTHORIZED", 40100),
        ("PAYMENT_REQUIRED", 40200),
        ("FORBIDDEN", 40300),
        ("NOT_FOUND", 40400),
        ("MESSAGE_NOT_FOUND", 40401),
        ("TOPIC_NOT_FOUND", 40402),
        ("CONSUMER_GROUP_NOT_FOUND", 40403),
        ("OFFSET_NOT_FOUND", 40404),
        ("REQUEST_TIMEOUT", 40800),
        ("PAYLOAD_TOO_LARGE", 41300),
        ("MESSAGE_BODY_TOO_LARGE", 41301),
        ("MESSAGE_BODY_EMPTY", 41302),
        ("PRECONDITION_FAILED", 42800),
        ("TOO_MANY_REQUESTS", 42900),
        ("LITE_TOPIC_QUOTA_EXCEEDED", 42901),
        ("LITE_SUBSCRIPTION_QUOTA_EXCEEDED", 42902),
        ("REQUEST_HEADER_FIELDS_TOO_LARGE", 43100),
        ("MESSAGE_PROPERTIES_TOO_LARGE", 43101),
        ("INTERNAL_ERROR", 50000),
        ("INTERNAL_SERVER_ERROR", 50001),
        ("HA_NOT_AVAILABLE", 50002),
        ("NOT_IMPLEMENTED", 50100),
        ("PROXY_TIMEOUT", 50400),
        ("MASTER_PERSISTENCE_TIMEOUT", 50401),
        ("SLAVE_PERSISTENCE_TIMEOUT", 50402),
        ("UNSUPPORTED", 50500),
        ("VERSION_UNSUPPORTED", 50501),
        ("VERIFY_FIFO_MESSAGE_UNSUPPORTED", 50502),
        ("FAILED_TO_CONSUME_MESSAGE", 60000),
    ]),
    ("Language", &[
        ("LANGUAGE_UNSPECIFIED", 0),
        ("JAVA", 1),
        ("CPP", 2),
        ("DOT_NET", 3),
        ("GOLANG", 4),
        ("RUST", 5),
        ("PYTHON", 6),
        ("PHP", 7),
        ("NODE_JS", 8),
        ("RUBY", 9),
        ("OBJECTIVE_C", 10),
        ("DART", 11),
        ("KOTLIN", 12),
    ]),
    ("LiteSubscriptionAction", &[
        ("PARTIAL_ADD", 0),
        ("PARTIAL_REMOVE", 1),
        ("COMPLETE_ADD", 2),
        ("COMPLETE_REMOVE", 3),
    ]),
    ("QueryOffsetPolicy", &[
        ("BEGINNING", 0),
        ("END", 1),
        ("TIMESTAMP", 2),
    ]),
    ("OffsetOption.Policy", &[
        ("LAST", 0),
        ("MIN", 1),
        ("MAX", 2),
    ]),];

/// Imports of each file, as upstream has them.
pub(crate) const IMPORTS: &[(&str, &[&str])] = &[
    (DEFINITION, &["google/protobuf/duration.proto", "google/protobuf/timestamp.proto"]),
    (SERVICE, &[DEFINITION, "google/protobuf/duration.proto", "google/protobuf/timestamp.proto"]),
];
