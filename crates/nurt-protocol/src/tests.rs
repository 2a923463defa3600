//! The guard's schemas must agree with `kafka-protocol`'s layouts for every served version,
//! and the decode path must turn any bytes into a request or an error, never a panic.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use proptest::prelude::*;

use crate::{decode_request, guard, versions, ProtocolError};

fn name(s: &'static str) -> StrBytes {
    StrBytes::from_static_str(s)
}

/// One populated request per served API: every array has an element, every string a value.
fn samples() -> Vec<(ApiKey, RequestKind)> {
    let topic_id = kafka_protocol::protocol::types::Uuid;
    let _ = topic_id;
    let uuid = uuid::Uuid::from_u128(42);
    vec![
        (
            ApiKey::ApiVersions,
            RequestKind::ApiVersions(
                ApiVersionsRequest::default()
                    .with_client_software_name(name("t"))
                    .with_client_software_version(name("1")),
            ),
        ),
        (
            ApiKey::Metadata,
            RequestKind::Metadata(
                MetadataRequest::default()
                    .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default()
                        .with_name(Some(TopicName(name("a"))))
                        .with_topic_id(uuid)]))
                    .with_allow_auto_topic_creation(true),
            ),
        ),
        (
            ApiKey::Produce,
            RequestKind::Produce(
                ProduceRequest::default()
                    .with_acks(-1)
                    .with_timeout_ms(5)
                    .with_topic_data(vec![produce_request::TopicProduceData::default()
                        .with_name(TopicName(name("t")))
                        .with_topic_id(uuid)
                        .with_partition_data(vec![produce_request::PartitionProduceData::default()
                            .with_index(1)
                            .with_records(Some(Bytes::from_static(b"records!")))])]),
            ),
        ),
        (
            ApiKey::Fetch,
            RequestKind::Fetch(
                FetchRequest::default()
                    .with_max_wait_ms(1)
                    .with_cluster_id(Some(name("c")))
                    .with_rack_id(name("r"))
                    .with_topics(vec![fetch_request::FetchTopic::default()
                        .with_topic(TopicName(name("t")))
                        .with_topic_id(uuid)
                        .with_partitions(vec![fetch_request::FetchPartition::default()
                            .with_partition(3)
                            .with_fetch_offset(7)
                            .with_replica_directory_id(uuid)])])
                    .with_forgotten_topics_data(vec![fetch_request::ForgottenTopic::default()
                        .with_topic(TopicName(name("f")))
                        .with_partitions(vec![1, 2])]),
            ),
        ),
        (
            ApiKey::ListOffsets,
            RequestKind::ListOffsets(ListOffsetsRequest::default().with_topics(
                vec![list_offsets_request::ListOffsetsTopic::default()
                    .with_name(TopicName(name("t")))
                    .with_partitions(vec![
                        list_offsets_request::ListOffsetsPartition::default().with_timestamp(-2)
                    ])],
            )),
        ),
        (
            ApiKey::OffsetForLeaderEpoch,
            RequestKind::OffsetForLeaderEpoch(OffsetForLeaderEpochRequest::default().with_topics(vec![
                    offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                        .with_topic(TopicName(name("t")))
                        .with_partitions(vec![
                            offset_for_leader_epoch_request::OffsetForLeaderPartition::default().with_leader_epoch(3),
                        ]),
                ])),
        ),
        (
            ApiKey::CreateTopics,
            RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(
                vec![create_topics_request::CreatableTopic::default()
                    .with_name(TopicName(name("t")))
                    .with_num_partitions(3)
                    .with_assignments(vec![
                        create_topics_request::CreatableReplicaAssignment::default().with_broker_ids(vec![BrokerId(1)])
                    ])
                    .with_configs(vec![create_topics_request::CreatableTopicConfig::default()
                        .with_name(name("k"))
                        .with_value(Some(name("v")))])],
            )),
        ),
        (
            ApiKey::DeleteTopics,
            RequestKind::DeleteTopics(
                DeleteTopicsRequest::default()
                    .with_topic_names(vec![TopicName(name("t"))])
                    .with_topics(vec![
                        delete_topics_request::DeleteTopicState::default().with_name(Some(TopicName(name("t"))))
                    ]),
            ),
        ),
        (
            ApiKey::InitProducerId,
            RequestKind::InitProducerId(
                InitProducerIdRequest::default().with_transactional_id(Some(TransactionalId(name("x")))),
            ),
        ),
        (
            ApiKey::DescribeConfigs,
            RequestKind::DescribeConfigs(DescribeConfigsRequest::default().with_resources(vec![
                    describe_configs_request::DescribeConfigsResource::default()
                        .with_resource_name(name("t"))
                        .with_configuration_keys(Some(vec![name("a")])),
                ])),
        ),
        (
            ApiKey::CreatePartitions,
            RequestKind::CreatePartitions(CreatePartitionsRequest::default().with_topics(vec![
                    create_partitions_request::CreatePartitionsTopic::default()
                        .with_name(TopicName(name("t")))
                        .with_count(4)
                        .with_assignments(Some(vec![
                            create_partitions_request::CreatePartitionsAssignment::default()
                                .with_broker_ids(vec![BrokerId(1)]),
                        ])),
                ])),
        ),
        (
            ApiKey::DescribeLogDirs,
            RequestKind::DescribeLogDirs(DescribeLogDirsRequest::default().with_topics(Some(vec![
                describe_log_dirs_request::DescribableLogDirTopic::default()
                    .with_topic(TopicName(name("t")))
                    .with_partitions(vec![0, 1]),
            ]))),
        ),
        (
            ApiKey::DescribeCluster,
            RequestKind::DescribeCluster(DescribeClusterRequest::default()),
        ),
        (
            ApiKey::ElectLeaders,
            RequestKind::ElectLeaders(
                ElectLeadersRequest::default()
                    .with_election_type(1)
                    .with_topic_partitions(Some(vec![elect_leaders_request::TopicPartitions::default()
                        .with_topic(TopicName(name("t")))
                        .with_partitions(vec![0, 3])]))
                    .with_timeout_ms(100),
            ),
        ),
        (
            ApiKey::ElectLeaders,
            RequestKind::ElectLeaders(ElectLeadersRequest::default().with_topic_partitions(Some(vec![
                elect_leaders_request::TopicPartitions::default()
                    .with_topic(TopicName(name("t")))
                    .with_partitions(vec![1]),
            ]))),
        ),
        (
            ApiKey::AlterPartitionReassignments,
            RequestKind::AlterPartitionReassignments(
                AlterPartitionReassignmentsRequest::default()
                    .with_timeout_ms(100)
                    .with_topics(vec![alter_partition_reassignments_request::ReassignableTopic::default(
                    )
                    .with_name(TopicName(name("t")))
                    .with_partitions(vec![
                        alter_partition_reassignments_request::ReassignablePartition::default()
                            .with_partition_index(0)
                            .with_replicas(Some(vec![BrokerId(1), BrokerId(4)])),
                        alter_partition_reassignments_request::ReassignablePartition::default()
                            .with_partition_index(1)
                            .with_replicas(None),
                    ])]),
            ),
        ),
        (
            ApiKey::ListPartitionReassignments,
            RequestKind::ListPartitionReassignments(
                ListPartitionReassignmentsRequest::default()
                    .with_timeout_ms(100)
                    .with_topics(Some(vec![
                        list_partition_reassignments_request::ListPartitionReassignmentsTopics::default()
                            .with_name(TopicName(name("t")))
                            .with_partition_indexes(vec![0]),
                    ])),
            ),
        ),
        (
            ApiKey::DescribeQuorum,
            RequestKind::DescribeQuorum(DescribeQuorumRequest::default().with_topics(vec![
                describe_quorum_request::TopicData::default()
                    .with_topic_name(TopicName(name("__cluster_metadata")))
                    .with_partitions(vec![describe_quorum_request::PartitionData::default().with_partition_index(0)]),
            ])),
        ),
        (
            ApiKey::DescribeTopicPartitions,
            RequestKind::DescribeTopicPartitions(
                DescribeTopicPartitionsRequest::default()
                    .with_topics(vec![
                        describe_topic_partitions_request::TopicRequest::default().with_name(TopicName(name("t")))
                    ])
                    .with_response_partition_limit(10)
                    .with_cursor(Some(
                        describe_topic_partitions_request::Cursor::default()
                            .with_topic_name(TopicName(name("t")))
                            .with_partition_index(2),
                    )),
            ),
        ),
        (
            ApiKey::DescribeTopicPartitions,
            RequestKind::DescribeTopicPartitions(
                DescribeTopicPartitionsRequest::default().with_response_partition_limit(10),
            ),
        ),
        (
            ApiKey::DescribeProducers,
            RequestKind::DescribeProducers(DescribeProducersRequest::default().with_topics(vec![
                describe_producers_request::TopicRequest::default()
                    .with_name(TopicName(name("t")))
                    .with_partition_indexes(vec![0, 3]),
            ])),
        ),
        (
            ApiKey::FindCoordinator,
            RequestKind::FindCoordinator(FindCoordinatorRequest::default().with_key(name("g")).with_key_type(1)),
        ),
        (
            ApiKey::FindCoordinator,
            RequestKind::FindCoordinator(FindCoordinatorRequest::default().with_key(name("g"))),
        ),
        (
            ApiKey::FindCoordinator,
            RequestKind::FindCoordinator(
                FindCoordinatorRequest::default()
                    .with_key_type(1)
                    .with_coordinator_keys(vec![name("a"), name("b")]),
            ),
        ),
        (
            ApiKey::OffsetCommit,
            RequestKind::OffsetCommit(
                OffsetCommitRequest::default()
                    .with_group_id(GroupId(name("g")))
                    .with_member_id(name("m"))
                    .with_group_instance_id(Some(name("i")))
                    .with_topics(vec![offset_commit_request::OffsetCommitRequestTopic::default()
                        .with_name(TopicName(name("t")))
                        .with_partitions(vec![
                            offset_commit_request::OffsetCommitRequestPartition::default()
                                .with_partition_index(2)
                                .with_committed_offset(9)
                                .with_committed_leader_epoch(1)
                                .with_committed_metadata(Some(name("md"))),
                        ])]),
            ),
        ),
        (
            ApiKey::OffsetCommit,
            RequestKind::OffsetCommit(
                OffsetCommitRequest::default()
                    .with_group_id(GroupId(name("g")))
                    .with_member_id(name("m"))
                    .with_topics(vec![offset_commit_request::OffsetCommitRequestTopic::default()
                        .with_name(TopicName(name("t")))
                        .with_partitions(vec![
                            offset_commit_request::OffsetCommitRequestPartition::default()
                                .with_partition_index(2)
                                .with_committed_offset(9)
                                .with_committed_metadata(Some(name("md"))),
                        ])]),
            ),
        ),
        (
            ApiKey::OffsetFetch,
            RequestKind::OffsetFetch(
                OffsetFetchRequest::default()
                    .with_group_id(GroupId(name("g")))
                    .with_topics(Some(vec![offset_fetch_request::OffsetFetchRequestTopic::default()
                        .with_name(TopicName(name("t")))
                        .with_partition_indexes(vec![0, 1])])),
            ),
        ),
        (
            ApiKey::OffsetFetch,
            RequestKind::OffsetFetch(OffsetFetchRequest::default().with_groups(vec![
                    offset_fetch_request::OffsetFetchRequestGroup::default()
                        .with_group_id(GroupId(name("g")))
                        .with_member_id(Some(name("m")))
                        .with_member_epoch(3)
                        .with_topics(Some(vec![offset_fetch_request::OffsetFetchRequestTopics::default()
                            .with_name(TopicName(name("t")))
                            .with_partition_indexes(vec![0, 1])])),
                ])),
        ),
        (
            ApiKey::OffsetFetch,
            RequestKind::OffsetFetch(OffsetFetchRequest::default().with_groups(vec![
                    offset_fetch_request::OffsetFetchRequestGroup::default()
                        .with_group_id(GroupId(name("g")))
                        .with_topics(Some(vec![offset_fetch_request::OffsetFetchRequestTopics::default()
                            .with_name(TopicName(name("t")))
                            .with_partition_indexes(vec![0, 1])])),
                ])),
        ),
        (
            ApiKey::JoinGroup,
            RequestKind::JoinGroup(
                JoinGroupRequest::default()
                    .with_group_id(GroupId(name("g")))
                    .with_session_timeout_ms(6000)
                    .with_member_id(name("m"))
                    .with_group_instance_id(Some(name("i")))
                    .with_protocol_type(name("consumer"))
                    .with_reason(Some(name("why")))
                    .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default()
                        .with_name(name("range"))
                        .with_metadata(Bytes::from_static(b"meta"))]),
            ),
        ),
        (
            ApiKey::JoinGroup,
            RequestKind::JoinGroup(
                JoinGroupRequest::default()
                    .with_group_id(GroupId(name("g")))
                    .with_session_timeout_ms(6000)
                    .with_member_id(name("m"))
                    .with_protocol_type(name("consumer"))
                    .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default()
                        .with_name(name("range"))
                        .with_metadata(Bytes::from_static(b"meta"))]),
            ),
        ),
        (
            ApiKey::Heartbeat,
            RequestKind::Heartbeat(
                HeartbeatRequest::default()
                    .with_group_id(GroupId(name("g")))
                    .with_member_id(name("m"))
                    .with_group_instance_id(Some(name("i"))),
            ),
        ),
        (
            ApiKey::Heartbeat,
            RequestKind::Heartbeat(
                HeartbeatRequest::default()
                    .with_group_id(GroupId(name("g")))
                    .with_member_id(name("m")),
            ),
        ),
        (
            ApiKey::LeaveGroup,
            RequestKind::LeaveGroup(
                LeaveGroupRequest::default()
                    .with_group_id(GroupId(name("g")))
                    .with_member_id(name("m")),
            ),
        ),
        (
            ApiKey::LeaveGroup,
            RequestKind::LeaveGroup(
                LeaveGroupRequest::default()
                    .with_group_id(GroupId(name("g")))
                    .with_members(vec![leave_group_request::MemberIdentity::default()
                        .with_member_id(name("m"))
                        .with_group_instance_id(Some(name("i")))
                        .with_reason(Some(name("r")))]),
            ),
        ),
        (
            ApiKey::LeaveGroup,
            RequestKind::LeaveGroup(
                LeaveGroupRequest::default()
                    .with_group_id(GroupId(name("g")))
                    .with_members(vec![leave_group_request::MemberIdentity::default()
                        .with_member_id(name("m"))
                        .with_group_instance_id(Some(name("i")))]),
            ),
        ),
        (
            ApiKey::SyncGroup,
            RequestKind::SyncGroup(
                SyncGroupRequest::default()
                    .with_group_id(GroupId(name("g")))
                    .with_member_id(name("m"))
                    .with_group_instance_id(Some(name("i")))
                    .with_protocol_type(Some(name("consumer")))
                    .with_protocol_name(Some(name("range")))
                    .with_assignments(vec![sync_group_request::SyncGroupRequestAssignment::default()
                        .with_member_id(name("m"))
                        .with_assignment(Bytes::from_static(b"a"))]),
            ),
        ),
        (
            ApiKey::SyncGroup,
            RequestKind::SyncGroup(
                SyncGroupRequest::default()
                    .with_group_id(GroupId(name("g")))
                    .with_member_id(name("m"))
                    .with_assignments(vec![sync_group_request::SyncGroupRequestAssignment::default()
                        .with_member_id(name("m"))
                        .with_assignment(Bytes::from_static(b"a"))]),
            ),
        ),
        (
            ApiKey::DescribeGroups,
            RequestKind::DescribeGroups(
                DescribeGroupsRequest::default().with_groups(vec![GroupId(name("a")), GroupId(name("b"))]),
            ),
        ),
        (
            ApiKey::ListGroups,
            RequestKind::ListGroups(
                ListGroupsRequest::default()
                    .with_states_filter(vec![name("Stable")])
                    .with_types_filter(vec![name("classic")]),
            ),
        ),
        (
            ApiKey::ListGroups,
            RequestKind::ListGroups(ListGroupsRequest::default().with_states_filter(vec![name("Stable")])),
        ),
        (
            ApiKey::ListGroups,
            RequestKind::ListGroups(ListGroupsRequest::default()),
        ),
        (
            ApiKey::DeleteGroups,
            RequestKind::DeleteGroups(DeleteGroupsRequest::default().with_groups_names(vec![GroupId(name("a"))])),
        ),
        (
            ApiKey::OffsetDelete,
            RequestKind::OffsetDelete(
                OffsetDeleteRequest::default()
                    .with_group_id(GroupId(name("g")))
                    .with_topics(vec![offset_delete_request::OffsetDeleteRequestTopic::default()
                        .with_name(TopicName(name("t")))
                        .with_partitions(vec![
                            offset_delete_request::OffsetDeleteRequestPartition::default().with_partition_index(1),
                        ])]),
            ),
        ),
        (
            ApiKey::ConsumerGroupHeartbeat,
            RequestKind::ConsumerGroupHeartbeat(
                ConsumerGroupHeartbeatRequest::default()
                    .with_group_id(GroupId(name("g")))
                    .with_member_id(name("m"))
                    .with_instance_id(Some(name("i")))
                    .with_rack_id(Some(name("r")))
                    .with_subscribed_topic_names(Some(vec![TopicName(name("t"))]))
                    .with_server_assignor(Some(name("uniform")))
                    .with_topic_partitions(Some(vec![consumer_group_heartbeat_request::TopicPartitions::default()
                        .with_topic_id(uuid)
                        .with_partitions(vec![1, 2])])),
            ),
        ),
        (
            ApiKey::ConsumerGroupHeartbeat,
            RequestKind::ConsumerGroupHeartbeat(
                ConsumerGroupHeartbeatRequest::default()
                    .with_group_id(GroupId(name("g")))
                    .with_member_id(name("m"))
                    .with_subscribed_topic_regex(Some(name("t.*"))),
            ),
        ),
        (
            ApiKey::ConsumerGroupDescribe,
            RequestKind::ConsumerGroupDescribe(
                ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(name("g"))]),
            ),
        ),
        (
            ApiKey::DeleteRecords,
            RequestKind::DeleteRecords(DeleteRecordsRequest::default().with_topics(
                vec![delete_records_request::DeleteRecordsTopic::default(
                )
                .with_name(TopicName(name("t")))
                .with_partitions(vec![delete_records_request::DeleteRecordsPartition::default()
                    .with_partition_index(1)
                    .with_offset(5)])],
            )),
        ),
        (
            ApiKey::AlterConfigs,
            RequestKind::AlterConfigs(AlterConfigsRequest::default().with_resources(vec![
                    alter_configs_request::AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(name("t"))
                        .with_configs(vec![alter_configs_request::AlterableConfig::default()
                            .with_name(name("retention.ms"))
                            .with_value(Some(name("1")))]),
                ])),
        ),
        (
            ApiKey::IncrementalAlterConfigs,
            RequestKind::IncrementalAlterConfigs(IncrementalAlterConfigsRequest::default().with_resources(vec![
                    incremental_alter_configs_request::AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(name("t"))
                        .with_configs(vec![incremental_alter_configs_request::AlterableConfig::default()
                            .with_name(name("retention.ms"))
                            .with_config_operation(1)
                            .with_value(Some(name("1")))]),
                ])),
        ),
        // Simpler variants for older versions, where the rich ones set fields that do not exist.
        (
            ApiKey::Metadata,
            RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![
                metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(name("a")))),
            ]))),
        ),
        (
            ApiKey::Produce,
            RequestKind::Produce(ProduceRequest::default().with_acks(1).with_topic_data(vec![
            produce_request::TopicProduceData::default().with_name(TopicName(name("t"))).with_partition_data(vec![
                produce_request::PartitionProduceData::default().with_records(Some(Bytes::from_static(b"r")))])])),
        ),
        (
            ApiKey::Produce,
            RequestKind::Produce(ProduceRequest::default().with_acks(1).with_topic_data(vec![
            produce_request::TopicProduceData::default().with_topic_id(uuid).with_partition_data(vec![
                produce_request::PartitionProduceData::default().with_records(Some(Bytes::from_static(b"r")))])])),
        ),
        (
            ApiKey::Fetch,
            RequestKind::Fetch(FetchRequest::default().with_max_wait_ms(1).with_topics(
                vec![fetch_request::FetchTopic::default().with_topic(TopicName(name("t"))).with_partitions(vec![
                fetch_request::FetchPartition::default().with_partition(3).with_fetch_offset(7)])],
            )),
        ),
        (
            ApiKey::Fetch,
            RequestKind::Fetch(
                FetchRequest::default()
                    .with_max_wait_ms(1)
                    .with_rack_id(name("r"))
                    .with_topics(vec![fetch_request::FetchTopic::default()
                        .with_topic(TopicName(name("t")))
                        .with_partitions(vec![fetch_request::FetchPartition::default()
                            .with_partition(3)
                            .with_fetch_offset(7)])])
                    .with_forgotten_topics_data(vec![fetch_request::ForgottenTopic::default()
                        .with_topic(TopicName(name("f")))
                        .with_partitions(vec![1, 2])]),
            ),
        ),
        (
            ApiKey::Fetch,
            RequestKind::Fetch(
                FetchRequest::default()
                    .with_max_wait_ms(1)
                    .with_cluster_id(Some(name("c")))
                    .with_rack_id(name("r"))
                    .with_topics(vec![fetch_request::FetchTopic::default()
                        .with_topic_id(uuid)
                        .with_partitions(vec![fetch_request::FetchPartition::default()
                            .with_partition(3)
                            .with_fetch_offset(7)])])
                    .with_forgotten_topics_data(vec![fetch_request::ForgottenTopic::default()
                        .with_topic_id(uuid)
                        .with_partitions(vec![1, 2])]),
            ),
        ),
        (
            ApiKey::DeleteTopics,
            RequestKind::DeleteTopics(DeleteTopicsRequest::default().with_topic_names(vec![TopicName(name("t"))])),
        ),
        (
            ApiKey::DeleteTopics,
            RequestKind::DeleteTopics(DeleteTopicsRequest::default().with_topics(vec![
                delete_topics_request::DeleteTopicState::default().with_name(Some(TopicName(name("t")))),
            ])),
        ),
        (
            ApiKey::InitProducerId,
            RequestKind::InitProducerId(InitProducerIdRequest::default()),
        ),
        (
            ApiKey::DescribeConfigs,
            RequestKind::DescribeConfigs(DescribeConfigsRequest::default().with_resources(vec![
                describe_configs_request::DescribeConfigsResource::default().with_resource_name(name("t")),
            ])),
        ),
        // Transactions. AddPartitionsToTxn v0–3 (a client's one transaction), then v4+ (a
        // broker verifying several at once).
        (
            ApiKey::AddPartitionsToTxn,
            RequestKind::AddPartitionsToTxn(
                AddPartitionsToTxnRequest::default()
                    .with_v3_and_below_transactional_id(TransactionalId(name("x")))
                    .with_v3_and_below_producer_id(ProducerId(7))
                    .with_v3_and_below_producer_epoch(2)
                    .with_v3_and_below_topics(vec![add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                        .with_name(TopicName(name("t")))
                        .with_partitions(vec![0, 1])]),
            ),
        ),
        (
            ApiKey::AddPartitionsToTxn,
            RequestKind::AddPartitionsToTxn(AddPartitionsToTxnRequest::default().with_transactions(vec![
                add_partitions_to_txn_request::AddPartitionsToTxnTransaction::default()
                    .with_transactional_id(TransactionalId(name("x")))
                    .with_producer_id(ProducerId(7))
                    .with_producer_epoch(2)
                    .with_verify_only(true)
                    .with_topics(vec![add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                        .with_name(TopicName(name("t")))
                        .with_partitions(vec![0, 1])]),
                add_partitions_to_txn_request::AddPartitionsToTxnTransaction::default()
                    .with_transactional_id(TransactionalId(name("y")))
                    .with_producer_id(ProducerId(8)),
            ])),
        ),
        (
            ApiKey::AddOffsetsToTxn,
            RequestKind::AddOffsetsToTxn(
                AddOffsetsToTxnRequest::default()
                    .with_transactional_id(TransactionalId(name("x")))
                    .with_producer_id(ProducerId(7))
                    .with_producer_epoch(2)
                    .with_group_id(GroupId(name("g"))),
            ),
        ),
        (
            ApiKey::EndTxn,
            RequestKind::EndTxn(
                EndTxnRequest::default()
                    .with_transactional_id(TransactionalId(name("x")))
                    .with_producer_id(ProducerId(7))
                    .with_producer_epoch(2)
                    .with_committed(true),
            ),
        ),
        (
            ApiKey::WriteTxnMarkers,
            RequestKind::WriteTxnMarkers(WriteTxnMarkersRequest::default().with_markers(vec![
                write_txn_markers_request::WritableTxnMarker::default()
                    .with_producer_id(ProducerId(7))
                    .with_producer_epoch(2)
                    .with_transaction_result(true)
                    .with_topics(vec![write_txn_markers_request::WritableTxnMarkerTopic::default()
                        .with_name(TopicName(name("t")))
                        .with_partition_indexes(vec![0, 1])])
                    .with_coordinator_epoch(3),
            ])),
        ),
        (
            ApiKey::TxnOffsetCommit,
            RequestKind::TxnOffsetCommit(
                TxnOffsetCommitRequest::default()
                    .with_transactional_id(TransactionalId(name("x")))
                    .with_group_id(GroupId(name("g")))
                    .with_producer_id(ProducerId(7))
                    .with_producer_epoch(2)
                    .with_generation_id(4)
                    .with_member_id(name("m"))
                    .with_group_instance_id(Some(name("i")))
                    .with_topics(vec![txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                        .with_name(TopicName(name("t")))
                        .with_partitions(vec![
                            txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                                .with_partition_index(1)
                                .with_committed_offset(17)
                                .with_committed_leader_epoch(5)
                                .with_committed_metadata(Some(name("meta"))),
                        ])]),
            ),
        ),
        // v0–2: no generation, member or instance id (the leader epoch, from v2, is ignorable).
        (
            ApiKey::TxnOffsetCommit,
            RequestKind::TxnOffsetCommit(
                TxnOffsetCommitRequest::default()
                    .with_transactional_id(TransactionalId(name("x")))
                    .with_group_id(GroupId(name("g")))
                    .with_producer_id(ProducerId(7))
                    .with_producer_epoch(2)
                    .with_topics(vec![txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                        .with_name(TopicName(name("t")))
                        .with_partitions(vec![
                            txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                                .with_partition_index(1)
                                .with_committed_offset(17)
                                .with_committed_leader_epoch(5)
                                .with_committed_metadata(Some(name("meta"))),
                        ])]),
            ),
        ),
        (
            ApiKey::DescribeTransactions,
            RequestKind::DescribeTransactions(
                DescribeTransactionsRequest::default()
                    .with_transactional_ids(vec![TransactionalId(name("x")), TransactionalId(name("y"))]),
            ),
        ),
        (
            ApiKey::ListTransactions,
            RequestKind::ListTransactions(
                ListTransactionsRequest::default()
                    .with_state_filters(vec![name("Ongoing")])
                    .with_producer_id_filters(vec![ProducerId(7)])
                    .with_duration_filter(60_000)
                    .with_transactional_id_pattern(Some(name("x.*"))),
            ),
        ),
        (
            ApiKey::ListTransactions,
            RequestKind::ListTransactions(
                ListTransactionsRequest::default()
                    .with_state_filters(vec![name("Ongoing")])
                    .with_producer_id_filters(vec![ProducerId(7)])
                    .with_duration_filter(60_000),
            ),
        ),
        (
            ApiKey::ListTransactions,
            RequestKind::ListTransactions(
                ListTransactionsRequest::default()
                    .with_state_filters(vec![name("Ongoing")])
                    .with_producer_id_filters(vec![ProducerId(7)]),
            ),
        ),
    ]
}

fn frame(key: ApiKey, version: i16, body: &RequestKind) -> Bytes {
    try_frame(key, version, body).expect("encodable")
}

fn try_frame(key: ApiKey, version: i16, body: &RequestKind) -> Option<Bytes> {
    let mut out = BytesMut::new();
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(9)
        .with_client_id(Some(name("test-client")));
    header.encode(&mut out, key.request_header_version(version)).unwrap();
    body.encode(&mut out, version).ok()?;
    Some(out.freeze())
}

#[test]
fn every_served_request_and_version_round_trips_through_the_guard() {
    let samples = samples();
    for &(key, min, max) in versions::SUPPORTED {
        // Legacy versions are hand-decoded: `legacy_versions_decode_and_answer` covers them.
        let lowest = min
            .max(if key == 0 { 3 } else { min })
            .max(crate::legacy::lowest_known(key).unwrap_or(min));
        for version in lowest..=max {
            let mut encoded = 0;
            for (api, body) in samples.iter().filter(|(k, _)| *k as i16 == key) {
                let Some(bytes) = try_frame(*api, version, body) else {
                    continue;
                };
                encoded += 1;
                let decoded = decode_request(&bytes).unwrap_or_else(|e| panic!("{api:?} v{version}: {e}"));
                assert_eq!(frame(*api, version, &decoded.body), bytes, "{api:?} v{version}");
                assert_eq!(decoded.header.correlation_id, 9);
                assert_eq!(decoded.header.client_id.as_deref(), Some("test-client"));
                // Every truncation is an error, never a panic or a wrong success.
                for cut in 0..bytes.len() {
                    assert!(
                        decode_request(&bytes.slice(..cut)).is_err(),
                        "{api:?} v{version} cut at {cut} of {} decoded",
                        bytes.len()
                    );
                }
            }
            assert!(encoded > 0, "no sample encodes api {key} v{version}");
        }
    }
}

#[test]
fn huge_array_length_is_refused_before_allocating() {
    // Metadata v1: topics array claiming i32::MAX elements.
    let mut out = BytesMut::new();
    out.put_i16(3);
    out.put_i16(1);
    out.put_i32(1);
    out.put_i16(-1);
    out.put_i32(i32::MAX);
    out.put_slice(&[0; 32]);
    assert!(matches!(
        decode_request(&out.freeze()),
        Err(ProtocolError::Malformed(_))
    ));
}

/// A flexible-version request header for `key` at `version` (compact strings follow).
fn flexible_header(key: i16, version: i16) -> BytesMut {
    let mut out = BytesMut::new();
    out.put_i16(key);
    out.put_i16(version);
    out.put_i32(1);
    out.put_i16(-1); // client id: null
    out.put_u8(0); // no tagged fields
    out
}

/// An unsigned varint.
fn put_uvarint(out: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        out.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

/// DescribeGroups v5 naming `n` empty group ids (one byte each on the wire).
fn describe_empty_groups(n: u64) -> Bytes {
    let mut out = flexible_header(15, 5);
    put_uvarint(&mut out, n + 1);
    for _ in 0..n {
        out.put_u8(1); // compact string of length 0
    }
    out.put_u8(0); // include_authorized_operations
    out.put_u8(0); // tagged fields
    out.freeze()
}

#[test]
fn collections_beyond_kafkas_limit_are_refused_and_elements_counted() {
    let ok = crate::inspect(&describe_empty_groups(1000)).unwrap();
    assert_eq!(ok.elements, 1000);
    let at_limit = crate::inspect(&describe_empty_groups(guard::COLLECTION_ELEMENTS_MAX as u64)).unwrap();
    assert_eq!(at_limit.elements, guard::COLLECTION_ELEMENTS_MAX);
    let over = describe_empty_groups(guard::COLLECTION_ELEMENTS_MAX as u64 + 1);
    assert!(matches!(crate::inspect(&over), Err(ProtocolError::Malformed(m)) if m.contains("1000000")));
}

#[test]
fn strings_longer_than_an_i16_length_are_refused() {
    // OffsetCommit v8 (flexible) whose group id is 40,000 bytes: the stored encoding has an
    // i16 length, so Kafka's parsers refuse it, and so does the guard.
    for (len, ok) in [(32_767usize, true), (32_768, false), (40_000, false)] {
        let mut out = flexible_header(8, 8);
        put_uvarint(&mut out, len as u64 + 1);
        out.put_slice(&vec![b'g'; len]);
        out.put_i32(-1); // generation
        out.put_u8(1); // member id ""
        out.put_u8(0); // group instance id: null
        out.put_u8(1); // topics: empty
        out.put_u8(0); // tagged fields
        let result = decode_request(&out.freeze());
        assert_eq!(result.is_ok(), ok, "group id of {len} bytes: {result:?}");
    }
}

#[test]
fn too_many_tagged_fields_are_refused() {
    for (count, ok) in [(10_000u64, true), (10_001, false)] {
        let mut out = BytesMut::new();
        out.put_i16(18);
        out.put_i16(3);
        out.put_i32(1);
        out.put_i16(-1);
        out.put_u8(0);
        out.put_u8(2); // client software name "a"
        out.put_u8(b'a');
        out.put_u8(2); // client software version "1"
        out.put_u8(b'1');
        put_uvarint(&mut out, count);
        for tag in 0..count {
            put_uvarint(&mut out, 1000 + tag); // unknown tags, empty
            out.put_u8(0);
        }
        let result = decode_request(&out.freeze());
        assert_eq!(result.is_ok(), ok, "{count} tagged fields: {result:?}");
    }
}

#[test]
fn unknown_keys_and_versions_are_errors() {
    let mut out = BytesMut::new();
    out.put_i16(9999);
    out.put_i16(0);
    out.put_i32(1);
    out.put_i16(-1);
    assert_eq!(
        decode_request(&out.freeze()).unwrap_err(),
        ProtocolError::UnknownApiKey(9999)
    );
    let bytes = frame(ApiKey::ApiVersions, 4, &samples()[0].1);
    let mut raw = BytesMut::from(&bytes[..]);
    raw[2..4].copy_from_slice(&99i16.to_be_bytes());
    assert!(matches!(
        decode_request(&raw.freeze()),
        Err(ProtocolError::UnsupportedVersion {
            api_key: 18,
            version: 99
        })
    ));
    assert!(guard::check(0, 2, false, &[]).is_err());
}

proptest! {
    /// Random bodies after a valid header: whatever the guard lets through is served and
    /// decodes (never an allocation the bytes cannot back: the decoder would abort first).
    #[test]
    fn random_bodies_are_refused_or_decode(key_idx in 0usize..versions::SUPPORTED.len(), version in 0i16..20, body in proptest::collection::vec(any::<u8>(), 0..200)) {
        let (key, _, _) = versions::SUPPORTED[key_idx];
        let mut out = BytesMut::new();
        out.put_i16(key);
        out.put_i16(version);
        out.put_i32(1);
        out.put_i16(-1);
        out.put_u8(0);
        out.put_slice(&body);
        if decode_request(&out.freeze()).is_ok() {
            prop_assert!(versions::range(key).is_some_and(|(min, max)| (min..=max).contains(&version)));
        }
    }

    /// The guard and the decoder read every body the same way: for a valid request with one
    /// byte changed, whenever both accept it the decoder has consumed exactly the bytes the
    /// guard walked. (A guard that misjudged a field's size, or skipped checking a tagged
    /// field's length, passes bytes the decoder reads differently. The decoder may still
    /// refuse content the guard does not judge, such as a string that is not UTF-8.)
    #[test]
    fn guard_and_decoder_agree_on_damaged_requests(idx in any::<usize>(), pos in any::<usize>(), byte in any::<u8>()) {
        let samples = samples();
        let (key, body) = &samples[idx % samples.len()];
        let (min, max) = versions::range(*key as i16).unwrap();
        let lowest = crate::legacy::lowest_known(*key as i16).unwrap_or(min).max(min);
        let Some(bytes) = (lowest..=max).rev().find_map(|v| try_frame(*key, v, body)) else { return Ok(()) };
        let mut raw = BytesMut::from(&bytes[..]);
        let at = pos % raw.len();
        raw[at] = byte;
        let raw = raw.freeze();
        if let Ok(inspected) = crate::inspect(&raw) {
            let version = inspected.header.api_version;
            let (_, _, body) = crate::header::parse(&raw).unwrap();
            let mut rest = body.clone();
            let flexible = inspected.api_key.request_header_version(version) >= 2;
            // The damaged byte may be in the header's API key: walk what the frame now says.
            let walked = guard::walk(inspected.api_key as i16, version, flexible, &body).unwrap();
            if RequestKind::decode(inspected.api_key, &mut rest, version).is_ok() {
                prop_assert_eq!(body.len() - rest.len(), walked.consumed_bytes, "the decoder read a different layout");
            }
        }
    }
}

fn legacy_frame(key: i16, version: i16, body: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i16(key);
    out.put_i16(version);
    out.put_i32(9);
    out.put_i16(4);
    out.put_slice(b"tool");
    out.put_slice(body);
    out.freeze()
}

fn put_str(out: &mut BytesMut, s: &str) {
    out.put_i16(s.len() as i16);
    out.put_slice(s.as_bytes());
}

/// The versions KIP-896 removed that Burrow and Sarama still send: decoded by hand into the
/// lowest version `kafka-protocol` knows, every truncation refused, and answered in their own
/// layouts.
#[test]
fn legacy_versions_decode_and_answer() {
    // ListOffsets v0 (Burrow): replica, [topic, [partition, timestamp, max_num_offsets]].
    let mut b = BytesMut::new();
    b.put_i32(-1);
    b.put_i32(1);
    put_str(&mut b, "orders");
    b.put_i32(1);
    b.put_i32(3);
    b.put_i64(-1);
    b.put_i32(1);
    let frame = legacy_frame(2, 0, &b);
    let RequestKind::ListOffsets(r) = decode_request(&frame).unwrap().body else {
        panic!()
    };
    assert_eq!(
        (r.topics[0].name.0.as_str(), r.topics[0].partitions[0].partition_index),
        ("orders", 3)
    );
    assert_eq!(r.topics[0].partitions[0].timestamp, -1);
    for cut in 0..frame.len() {
        assert!(decode_request(&frame.slice(..cut)).is_err(), "cut at {cut}");
    }
    let answer =
        ListOffsetsResponse::default().with_topics(vec![list_offsets_response::ListOffsetsTopicResponse::default()
            .with_name(TopicName(name("orders")))
            .with_partitions(vec![list_offsets_response::ListOffsetsPartitionResponse::default()
                .with_partition_index(3)
                .with_offset(42)])]);
    let mut out = BytesMut::new();
    crate::encode_response(&mut out, ApiKey::ListOffsets, 0, 9, &ResponseKind::ListOffsets(answer)).unwrap();
    let mut want = BytesMut::new();
    want.put_i32(9);
    want.put_i32(1);
    put_str(&mut want, "orders");
    want.put_i32(1);
    want.put_i32(3);
    want.put_i16(0);
    want.put_i32(1);
    want.put_i64(42);
    assert_eq!(&out[4..], &want[..]);

    // OffsetCommit v0 (no generation) and v1 (generation, member, per-partition timestamp).
    for version in [0i16, 1] {
        let mut b = BytesMut::new();
        put_str(&mut b, "g");
        if version == 1 {
            b.put_i32(4);
            put_str(&mut b, "m");
        }
        b.put_i32(1);
        put_str(&mut b, "orders");
        b.put_i32(1);
        b.put_i32(0);
        b.put_i64(17);
        if version == 1 {
            b.put_i64(1_000);
        }
        put_str(&mut b, "meta");
        let frame = legacy_frame(8, version, &b);
        let RequestKind::OffsetCommit(r) = decode_request(&frame).unwrap().body else {
            panic!()
        };
        let expected = if version == 1 { (4, "m") } else { (-1, "") };
        assert_eq!((r.generation_id_or_member_epoch, r.member_id.as_str()), expected);
        let p = &r.topics[0].partitions[0];
        assert_eq!(
            (p.committed_offset, p.committed_metadata.as_deref()),
            (17, Some("meta"))
        );
        for cut in 0..frame.len() {
            assert!(decode_request(&frame.slice(..cut)).is_err(), "v{version} cut at {cut}");
        }
    }

    // DescribeConfigs v0 (Sarama's ClusterAdmin): [type, name, [config names] or null].
    let mut b = BytesMut::new();
    b.put_i32(1);
    b.put_i8(2);
    put_str(&mut b, "orders");
    b.put_i32(-1);
    let frame = legacy_frame(32, 0, &b);
    let RequestKind::DescribeConfigs(r) = decode_request(&frame).unwrap().body else {
        panic!()
    };
    assert_eq!(r.resources[0].resource_name.as_str(), "orders");
    assert_eq!(r.resources[0].configuration_keys, None);
    let answer = DescribeConfigsResponse::default().with_results(vec![
        describe_configs_response::DescribeConfigsResult::default()
            .with_resource_type(2)
            .with_resource_name(name("orders"))
            .with_error_message(None)
            .with_configs(vec![describe_configs_response::DescribeConfigsResourceResult::default(
            )
            .with_name(name("retention.ms"))
            .with_value(Some(name("1000")))
            .with_config_source(5)]),
    ]);
    let mut out = BytesMut::new();
    crate::encode_response(
        &mut out,
        ApiKey::DescribeConfigs,
        0,
        9,
        &ResponseKind::DescribeConfigs(answer),
    )
    .unwrap();
    let mut want = BytesMut::new();
    want.put_i32(9);
    want.put_i32(0); // throttle
    want.put_i32(1);
    want.put_i16(0);
    want.put_i16(-1);
    want.put_i8(2);
    put_str(&mut want, "orders");
    want.put_i32(1);
    put_str(&mut want, "retention.ms");
    put_str(&mut want, "1000");
    want.put_slice(&[0, 1, 0]); // read only, is default, sensitive
    assert_eq!(&out[4..], &want[..]);
}

/// A known tagged field must be exactly as long as it says: the decoder reads it in place by
/// its type and ignores the size, so a size that disagrees would shift everything after it.
#[test]
fn known_tagged_fields_must_be_exactly_their_size() {
    let dir_id = uuid::Uuid::from_u128(0x1122_3344_5566_7788_99aa_bbcc_ddee_ff00);
    let request = RequestKind::Fetch(
        FetchRequest::default().with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic_id(uuid::Uuid::from_u128(7))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_replica_directory_id(dir_id)])]),
    );
    let good = frame(ApiKey::Fetch, 17, &request);
    assert!(decode_request(&good).is_ok());
    // Tag 0 (the replica directory id), size 16, then the uuid: claim 17 bytes, add one.
    let needle: Vec<u8> = [&[0u8, 16][..], dir_id.as_bytes()].concat();
    let at = good
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("tag 0 in the frame");
    let mut bad = good[..at].to_vec();
    bad.extend_from_slice(&[0, 17]);
    bad.extend_from_slice(dir_id.as_bytes());
    bad.push(0);
    bad.extend_from_slice(&good[at + needle.len()..]);
    let bad = Bytes::from(bad);
    assert!(matches!(decode_request(&bad), Err(ProtocolError::Malformed(_))));
    // The guard itself refuses it (not only the decoder, by luck of what follows).
    let (_, _, body) = crate::header::parse(&bad).unwrap();
    assert!(guard::check(1, 17, true, &body).is_err());
}
