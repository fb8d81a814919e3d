package promremote

import (
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
)

// FuzzDecodeWriteRequest checks that no body makes the decoder panic or
// exceed its size limit.
func FuzzDecodeWriteRequest(f *testing.F) {
	req := prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "job", Value: "x"}},
		Samples: []prompb.Sample{{Timestamp: 1, Value: 1}},
	}}}
	raw, _ := req.Marshal()
	f.Add(snappy.Encode(nil, raw))
	f.Add([]byte("not snappy"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > 1<<16 {
			return
		}
		got, err := DecodeWriteRequest(body, 1<<20)
		if err == nil && got == nil {
			t.Fatal("nil request without error")
		}
		if err == nil {
			h, err := New(nil, Config{}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			for _, ts := range got.Timeseries {
				var b labels.ScratchBuilder
				_, _ = h.seriesLabels(&b, ts.Labels)
				_ = seriesName(ts.Labels)
			}
		}
	})
}
