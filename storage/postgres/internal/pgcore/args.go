package pgcore

import (
	"fmt"
	"strconv"
)

// Args collects the arguments of a statement assembled from constant SQL
// parts, and numbers their placeholders in the order they are added.
type Args []any

// Add appends v and returns its placeholder, "$n".
func (a *Args) Add(v any) string {
	*a = append(*a, v)
	return "$" + strconv.Itoa(len(*a))
}

// Bind appends vals and returns part, a constant SQL fragment with one %s
// verb per value, with those verbs replaced by the values' placeholders:
// Bind("start_time >= %s", t) is "start_time >= $3" when two arguments
// came before.
func (a *Args) Bind(part string, vals ...any) string {
	ph := make([]any, len(vals))
	for i, v := range vals {
		ph[i] = a.Add(v)
	}
	return fmt.Sprintf(part, ph...)
}
