package mapstore

// MapTotalsSQL is the statement of MapTotals, for the benchmark's plan.
const MapTotalsSQL = mapTotalsSQL
