package ingest

import (
	"fmt"
	"strings"
)

// RefusedSamples is the error of an appender's Commit when the store
// refused some of the appended samples (its Append failed: a label set it
// cannot hold, a time out of its bounds) and committed all the others.
// It wraps ErrPartlyStored and the first refusal's error.
type RefusedSamples struct {
	// Samples lists the refused samples in Append order.
	Samples []RefusedSample
}

// RefusedSample is one sample the store refused.
type RefusedSample struct {
	// Index is the sample's position among the appender's Append calls,
	// from 0.
	Index int
	// Err is the store's Append error.
	Err error
}

// maxReportedRefusals is how many refusals the message of RefusedSamples
// names.
const maxReportedRefusals = 5

func (e *RefusedSamples) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d samples refused, the others stored: ", len(e.Samples))
	for i, s := range e.Samples {
		if i == maxReportedRefusals {
			fmt.Fprintf(&b, "; and %d more", len(e.Samples)-i)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(s.Err.Error())
	}
	return b.String()
}

// Unwrap returns ErrPartlyStored and the first refusal's error.
func (e *RefusedSamples) Unwrap() []error {
	errs := []error{ErrPartlyStored}
	if len(e.Samples) > 0 {
		errs = append(errs, e.Samples[0].Err)
	}
	return errs
}
