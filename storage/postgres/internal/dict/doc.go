// Package dict holds what the span and log stores share beyond SQL
// plumbing: the dictionaries that turn repeated strings into ids
// (services, operations, attribute keys, interned attribute values,
// resources) with their in-process caches, and the payload building
// blocks that refer to them (attribute maps with keys as ids, tagged
// values, resources, the attribute Bloom filter, which also holds each
// value's Jaeger string form so that a search by it can match, span ids as
// bigint). The hash of a key=value pair that the Bloom filter takes its
// bits from (TagHash, KeyHash) is also what the span store's tag index
// (span_tags) records.
//
// In the data flow it sits under storage/postgres/spanstore and logstore:
// their writers resolve dictionary entries here before they COPY the rows
// that use them (so every id in a row exists), and their readers load the
// entries a page of rows refers to before decoding it. The payload layouts
// themselves (which fields, in which order) belong to each store. The
// metric store has a label dictionary of its own and does not use this
// package.
package dict
