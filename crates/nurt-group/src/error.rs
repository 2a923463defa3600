//! The one error type of this crate, named by meaning; the broker maps each to a Kafka code.

/// Why a group request was refused.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum GroupError {
    #[error("the group id is empty or invalid")]
    InvalidGroupId,
    #[error("the member id is not known to the group")]
    UnknownMemberId,
    #[error("the generation is not the group's current one")]
    IllegalGeneration,
    #[error("the group is rebalancing")]
    RebalanceInProgress,
    #[error("the protocol type or protocols do not match the group's")]
    InconsistentGroupProtocol,
    #[error("the session timeout is outside group.min/max.session.timeout.ms")]
    InvalidSessionTimeout,
    #[error("rejoin with the member id given in this response")]
    MemberIdRequired,
    #[error("the group still has members")]
    NonEmptyGroup,
    #[error("the group does not exist")]
    GroupIdNotFound,
    #[error("the group has members subscribed to the topic")]
    GroupSubscribedToTopic,
    #[error("the static member was replaced by a newer instance")]
    FencedInstanceId,
    #[error("the member epoch is fenced")]
    FencedMemberEpoch,
    #[error("the member epoch is stale")]
    StaleMemberEpoch,
    #[error("the requested server assignor is not supported")]
    UnsupportedAssignor,
    #[error("offset metadata is larger than offset.metadata.max.bytes")]
    OffsetMetadataTooLarge,
    #[error("the request is invalid: {0}")]
    InvalidRequest(&'static str),
    #[error("the group uses the other rebalance protocol")]
    GroupTypeMismatch,
    #[error("the group's records could not be persisted; retry")]
    CoordinatorNotAvailable,
    #[error("the subscription's regular expression is not valid")]
    InvalidRegularExpression,
    #[error("this broker does not coordinate the group (it does not lead its __consumer_offsets partition)")]
    NotCoordinator,
}
