package pgcore

// MaxCacheEntries bounds each in-process cache of a dictionary table
// (services, attribute keys, label pairs, known series…): a cache that
// grows past it is cleared and refilled from the database on demand.
const MaxCacheEntries = 1 << 20
