//! `authorized_operations` in describe answers. Without an authorizer Kafka reports every
//! operation the resource type supports (`AclEntry.supportedOperations`), as a bit field of
//! ACL operation codes, when the request asks; otherwise `i32::MIN` ("not requested").

/// The resource types that carry authorized operations in an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Topic,
    Group,
    Cluster,
}

// Kafka's `AclOperation` codes.
const READ: u8 = 3;
const WRITE: u8 = 4;
const CREATE: u8 = 5;
const DELETE: u8 = 6;
const ALTER: u8 = 7;
const DESCRIBE: u8 = 8;
const CLUSTER_ACTION: u8 = 9;
const DESCRIBE_CONFIGS: u8 = 10;
const ALTER_CONFIGS: u8 = 11;
const IDEMPOTENT_WRITE: u8 = 12;

/// "Not requested", as Kafka encodes it.
pub const NOT_REQUESTED: i32 = i32::MIN;

/// The operations a principal may perform on `resource` (all supported ones: no authorizer
/// is configured), or [`NOT_REQUESTED`].
pub fn authorized_operations(resource: Resource, requested: bool) -> i32 {
    if !requested {
        return NOT_REQUESTED;
    }
    let ops: &[u8] = match resource {
        Resource::Topic => &[
            READ,
            WRITE,
            CREATE,
            DESCRIBE,
            DELETE,
            ALTER,
            DESCRIBE_CONFIGS,
            ALTER_CONFIGS,
        ],
        Resource::Group => &[READ, DESCRIBE, DELETE],
        Resource::Cluster => &[
            CREATE,
            CLUSTER_ACTION,
            DESCRIBE_CONFIGS,
            ALTER_CONFIGS,
            IDEMPOTENT_WRITE,
            ALTER,
            DESCRIBE,
        ],
    };
    ops.iter().fold(0, |bits, op| bits | (1 << op))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_fields_are_kafkas() {
        assert_eq!(authorized_operations(Resource::Group, false), i32::MIN);
        // READ, DESCRIBE, DELETE: bits 3, 8, 6.
        assert_eq!(
            authorized_operations(Resource::Group, true),
            (1 << 3) | (1 << 6) | (1 << 8)
        );
        assert_eq!(authorized_operations(Resource::Topic, true).count_ones(), 8);
        assert_eq!(authorized_operations(Resource::Cluster, true).count_ones(), 7);
    }
}
