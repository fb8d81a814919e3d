package logstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/vigil-obs/vigil/storage/postgres/internal/pgcore"
)

// A block is a run of at most maxBlockRecords records of one service and
// one window, in (time, id) order, stored as one log_blocks row. Its
// records' fields are laid out column by column (all times, then all
// severities, ...) in two zstd frames: times, which a histogram reads
// alone, and data, everything else. Before compression (integers are
// uvarints unless noted; zz is a zig-zag varint; LE a little-endian fixed
// width):
//
//	times: version n  time[n] (µs after the previous record's, the first
//	       after start_time)  severity[n]
//	data:  version n  observed[n] (zz µs from the record's time)
//	       id[n] (8 LE)  resources (k, k × 8 LE, index[n])
//	       span[n] (8 LE)  bloom[n] (8 LE)
//	       trace kind[n] (traceNone, traceSame as the previous record's,
//	       traceNew followed in order by the 16-byte ids of the new ones)
//	       severity texts (k strings, index[n])
//	       body length[n]  bodies  payload length[n]  payloads
//
// A string is a uvarint length and its bytes. Random 64-bit ids, span ids
// and Bloom filters are fixed width: varints would only lengthen them.
const (
	blockVersion byte = 1
	// maxBlockRecords bounds the records of a block: a search decodes a
	// whole block to find one record of it.
	maxBlockRecords = 1000
	// maxBlockBytes bounds the uncompressed size of a block's bodies and
	// payloads, so a block of large records stays small enough to decode
	// for one record; a decoder refuses frames above maxBlockFrame.
	maxBlockBytes = 4 << 20
	maxBlockFrame = 64 << 20

	traceNone byte = 0
	traceSame byte = 1
	traceNew  byte = 2

	// tokenHashBits is the width of the token hashes of a block's tokens
	// column: few enough distinct values that the GIN index holds a
	// posting list per hash rather than an entry per distinct token (most
	// tokens of a log, request ids and numbers, occur once), enough that a
	// rare token's hash is shared by few blocks.
	tokenHashBits = 20
)

// errBlock marks a malformed block; it wraps pgcore.ErrCorrupt.
var errBlock = fmt.Errorf("log block: %w", pgcore.ErrCorrupt)

// blockCodec compresses and decompresses block frames. Safe for
// concurrent use.
type blockCodec struct {
	enc *zstd.Encoder
	dec *zstd.Decoder
}

// newBlockCodec returns a codec; it fails only if zstd cannot be set up.
func newBlockCodec() (*blockCodec, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBetterCompression), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, fmt.Errorf("log block encoder: %w", err)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(maxBlockFrame),
		zstd.WithDecodeAllCapLimit(true))
	if err != nil {
		return nil, fmt.Errorf("log block decoder: %w", err)
	}
	return &blockCodec{enc: enc, dec: dec}, nil
}

// tokenHash is the value of a token in a block's tokens column and a
// record's token_hashes.
// It is 32-bit FNV-1a, masked to tokenHashBits, as vigil_token_hashes
// (migrations/0017) computes it.
func tokenHash(tok []byte) int32 {
	h := uint32(2166136261)
	for _, c := range tok {
		h ^= uint32(c)
		h *= 16777619
	}
	return int32(h & (1<<tokenHashBits - 1))
}

// encodedBlock is a block as written to log_blocks.
type encodedBlock struct {
	start, end   time.Time
	id           int64
	bloom        int64
	service      int32
	records      int32
	minSev       int16
	maxSev       int16
	traceIDs     [][16]byte
	tokens       []int32
	times, data  []byte
	rawBodyBytes int // bodies and payloads before compression
}

// encode renders rows, all of one service and sorted by (time, id), as a
// block. tok is scratch space.
func (c *blockCodec) encode(rows []logRow, tok *tokenizer) (encodedBlock, error) {
	if len(rows) == 0 || len(rows) > maxBlockRecords {
		return encodedBlock{}, fmt.Errorf("encode log block: %d records", len(rows))
	}
	b := encodedBlock{start: rows[0].time, end: rows[len(rows)-1].time, service: rows[0].service,
		records: int32(len(rows)), minSev: rows[0].severity, maxSev: rows[0].severity}
	hashes := map[int32]struct{}{}
	traces := map[[16]byte]struct{}{}
	// Empty arrays, not NULL, when no record has a trace id or a token.
	b.traceIDs, b.tokens = [][16]byte{}, []int32{}
	for i := range rows {
		r := &rows[i]
		if r.service != b.service {
			return encodedBlock{}, fmt.Errorf("encode log block: services %d and %d", b.service, r.service)
		}
		if i > 0 && (r.time.Before(rows[i-1].time) || r.time.Equal(rows[i-1].time) && r.id < rows[i-1].id) {
			return encodedBlock{}, errors.New("encode log block: records out of order")
		}
		b.bloom |= r.bloom
		b.minSev, b.maxSev = min(b.minSev, r.severity), max(b.maxSev, r.severity)
		if r.traceID != ([16]byte{}) {
			traces[r.traceID] = struct{}{}
		}
		tok.tokens(r.body)
		for _, sp := range tok.spans {
			hashes[tokenHash(tok.buf[sp.start:sp.end])] = struct{}{}
		}
		b.rawBodyBytes += len(r.body) + len(r.payload)
	}
	for id := range traces {
		b.traceIDs = append(b.traceIDs, id)
	}
	slices.SortFunc(b.traceIDs, func(x, y [16]byte) int { return slices.Compare(x[:], y[:]) })
	for h := range hashes {
		b.tokens = append(b.tokens, h)
	}
	slices.Sort(b.tokens)

	n := uint64(len(rows))
	raw := []byte{blockVersion}
	raw = binary.AppendUvarint(raw, n)
	prev := b.start.UnixMicro()
	for i := range rows {
		t := rows[i].time.UnixMicro()
		raw = binary.AppendUvarint(raw, uint64(t-prev))
		prev = t
	}
	for i := range rows {
		raw = binary.AppendUvarint(raw, uint64(uint16(rows[i].severity)))
	}
	b.times = c.enc.EncodeAll(raw, nil)

	raw = append(raw[:0], blockVersion)
	raw = binary.AppendUvarint(raw, n)
	for i := range rows {
		raw = binary.AppendVarint(raw, rows[i].observed.UnixMicro()-rows[i].time.UnixMicro())
	}
	for i := range rows {
		raw = binary.LittleEndian.AppendUint64(raw, uint64(rows[i].id))
	}
	raw = appendDict(raw, rows, func(r *logRow) int64 { return r.resource }, func(b []byte, v int64) []byte {
		return binary.LittleEndian.AppendUint64(b, uint64(v))
	})
	for i := range rows {
		raw = binary.LittleEndian.AppendUint64(raw, uint64(rows[i].spanID))
	}
	for i := range rows {
		raw = binary.LittleEndian.AppendUint64(raw, uint64(rows[i].bloom))
	}
	for i := range rows {
		switch {
		case rows[i].traceID == ([16]byte{}):
			raw = append(raw, traceNone)
		case i > 0 && rows[i].traceID == rows[i-1].traceID:
			raw = append(raw, traceSame)
		default:
			raw = append(raw, traceNew)
		}
	}
	for i := range rows {
		if rows[i].traceID != ([16]byte{}) && (i == 0 || rows[i].traceID != rows[i-1].traceID) {
			raw = append(raw, rows[i].traceID[:]...)
		}
	}
	raw = appendDict(raw, rows, func(r *logRow) string { return r.sevText }, func(b []byte, v string) []byte {
		return append(binary.AppendUvarint(b, uint64(len(v))), v...)
	})
	for i := range rows {
		raw = binary.AppendUvarint(raw, uint64(len(rows[i].body)))
	}
	for i := range rows {
		raw = append(raw, rows[i].body...)
	}
	for i := range rows {
		raw = binary.AppendUvarint(raw, uint64(len(rows[i].payload)))
	}
	for i := range rows {
		raw = append(raw, rows[i].payload...)
	}
	b.data = c.enc.EncodeAll(raw, nil)
	return b, nil
}

// appendDict appends the distinct values of field over rows (k, then each
// value by put) and each row's index among them.
func appendDict[V comparable](b []byte, rows []logRow, field func(*logRow) V, put func([]byte, V) []byte) []byte {
	index := map[V]uint64{}
	var values []V
	for i := range rows {
		v := field(&rows[i])
		if _, ok := index[v]; !ok {
			index[v] = uint64(len(values))
			values = append(values, v)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(values)))
	for _, v := range values {
		b = put(b, v)
	}
	for i := range rows {
		b = binary.AppendUvarint(b, index[field(&rows[i])])
	}
	return b
}

// decompress returns the uncompressed frame, appended to dst[:0] (whose
// memory it reuses when large enough), refusing one larger than
// maxBlockFrame. The frame header's content size (encode always writes
// it) sizes the output exactly, however well the frame compressed.
func (c *blockCodec) decompress(frame []byte, what string, dst []byte) ([]byte, error) {
	size := uint64(min(8*len(frame)+64, maxBlockFrame))
	var h zstd.Header
	if h.Decode(frame) == nil && h.HasFCS {
		size = min(h.FrameContentSize, maxBlockFrame)
	}
	if uint64(cap(dst)) < size {
		dst = make([]byte, 0, size)
	}
	raw, err := c.dec.DecodeAll(frame, dst[:0])
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errBlock, what, err)
	}
	return raw, nil
}

// decodeTimes decodes a block's times column, start being its start_time:
// the records' times (µs since the Unix epoch) and severity numbers.
func (c *blockCodec) decodeTimes(start time.Time, frame []byte) (times []int64, sev []int16, err error) {
	var s blockScratch
	return c.decodeTimesInto(start, frame, &s)
}

// decodeTimesInto is decodeTimes into s's memory: the slices returned and
// s.raw are valid until s is used again.
func (c *blockCodec) decodeTimesInto(start time.Time, frame []byte, s *blockScratch) (times []int64, sev []int16, err error) {
	raw, err := c.decompress(frame, "times", s.raw)
	if err != nil {
		return nil, nil, err
	}
	s.raw = raw
	d := pgcore.NewDecoder(raw)
	if v := d.Byte(); d.Err() == nil && v != blockVersion {
		return nil, nil, fmt.Errorf("%w: times: version %d", errBlock, v)
	}
	n := d.Count()
	if n > maxBlockRecords {
		return nil, nil, fmt.Errorf("%w: times: %d records", errBlock, n)
	}
	times = grow(s.times, n)
	t := start.UnixMicro()
	for i := range times {
		delta := d.Uvarint()
		if delta > 1<<40 { // more than a window: not a block's
			d.Fail("time delta out of range")
		}
		t += int64(delta)
		times[i] = t
	}
	sev = grow(s.sev, n)
	for i := range sev {
		v := d.Uvarint()
		if v > 0xffff {
			d.Fail("severity out of range")
		}
		sev[i] = int16(uint16(v))
	}
	if err := d.Finish(); err != nil {
		return nil, nil, fmt.Errorf("log block times: %w", err)
	}
	s.times, s.sev = times, sev
	return times, sev, nil
}

// readIndexes reads n indexes into a dictionary of size entries (what
// names it in errors) into dst's memory.
func readIndexes(d *pgcore.Decoder, dst []uint32, n, size int, what string) []uint32 {
	dst = grow(dst, n)
	for i := range n {
		if x := d.Uvarint(); x < uint64(size) {
			dst[i] = uint32(x)
		} else {
			d.Fail(what + " index out of range")
		}
	}
	return dst
}

// grow returns s resized to n elements, reusing its memory when it can;
// the elements' values are left to the caller.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// blockScratch is the reusable memory of one goroutine decoding blocks.
type blockScratch struct {
	tok   tokenizer
	raw   []byte // a decompressed frame
	times []int64
	sev   []int16
	view  dataView
	lower []byte  // a block's bodies, ASCII lower-cased
	hits  []uint8 // per record, the text tokens found in its body
}

// dataView is a decompressed data column, checked whole and indexed by
// record, so that a search reads a record's fields without building
// every record of the block.
type dataView struct {
	raw       []byte
	observed  []int64 // µs from the record's time
	ids       int     // offset in raw of the ids (8 LE each)
	spans     int     // of the span ids
	blooms    int     // of the Bloom filters
	resources []int64
	resIdx    []uint32
	traceAt   []int32 // offset in raw of the record's trace id, -1 if none
	texts     []string
	textIdx   []uint32
	bodyAt    []int // n+1 offsets in raw: body i is raw[bodyAt[i]:bodyAt[i+1]]
	payloadAt []int // likewise
}

// parse checks raw, a decompressed data column of n records, and indexes
// it in v.
func (v *dataView) parse(raw []byte, n int) error {
	v.raw = raw
	d := pgcore.NewDecoder(raw)
	at := func() int { return len(raw) - d.Len() }
	if b := d.Byte(); d.Err() == nil && b != blockVersion {
		return fmt.Errorf("%w: data: version %d", errBlock, b)
	}
	if m := d.Uvarint(); d.Err() == nil && m != uint64(n) {
		return fmt.Errorf("%w: data holds %d records, times %d", errBlock, m, n)
	}
	v.observed = grow(v.observed, n)
	for i := range n {
		v.observed[i] = d.Varint()
	}
	fixed := func() int {
		o := at()
		d.Bytes(8 * uint64(n))
		return o
	}
	v.ids = fixed()
	k := d.Count()
	v.resources = v.resources[:0]
	for range k {
		if p := d.Bytes(8); p != nil {
			v.resources = append(v.resources, int64(binary.LittleEndian.Uint64(p)))
		}
	}
	v.resIdx = readIndexes(&d, v.resIdx, n, len(v.resources), "resource")
	v.spans = fixed()
	v.blooms = fixed()
	v.traceAt = grow(v.traceAt, n)
	for i := range v.traceAt {
		v.traceAt[i] = -1
	}
	kinds := d.Bytes(uint64(n))
	for i, kind := range kinds {
		switch kind {
		case traceNone:
		case traceSame:
			if i == 0 || v.traceAt[i-1] < 0 {
				d.Fail("trace id repeated without a previous one")
			} else {
				v.traceAt[i] = v.traceAt[i-1]
			}
		case traceNew:
			o := at()
			if p := d.Bytes(16); p != nil {
				if [16]byte(p) == ([16]byte{}) {
					d.Fail("zero trace id")
				} else {
					v.traceAt[i] = int32(o)
				}
			}
		default:
			d.Fail(fmt.Sprintf("unknown trace kind %d", kind))
		}
	}
	k = d.Count()
	v.texts = v.texts[:0]
	for range k {
		v.texts = append(v.texts, d.Str())
	}
	v.textIdx = readIndexes(&d, v.textIdx, n, len(v.texts), "severity text")
	v.bodyAt = v.lengths(&d, n, v.bodyAt, "body")
	v.payloadAt = v.lengths(&d, n, v.payloadAt, "payload")
	if err := d.Finish(); err != nil {
		return fmt.Errorf("log block data: %w", err)
	}
	return nil
}

// lengths reads n lengths and the n strings that follow them from d,
// returning the strings' n+1 offsets in v.raw (in at's memory).
func (v *dataView) lengths(d *pgcore.Decoder, n int, at []int, what string) []int {
	at = grow(at, n+1)
	total := uint64(0)
	for i := range n {
		l := d.Uvarint()
		if l > uint64(d.Len()) || total+l > uint64(d.Len()) {
			d.Fail(what + " lengths beyond end")
			break
		}
		at[i] = int(total)
		total += l
	}
	o := len(v.raw) - d.Len()
	if d.Bytes(total); d.Err() != nil {
		return at
	}
	for i := range n {
		at[i] += o
	}
	at[n] = o + int(total)
	return at
}

// id, spanID, bloom and traceID return record i's fields.
func (v *dataView) id(i int) int64 { return int64(binary.LittleEndian.Uint64(v.raw[v.ids+8*i:])) }
func (v *dataView) spanID(i int) int64 {
	return int64(binary.LittleEndian.Uint64(v.raw[v.spans+8*i:]))
}
func (v *dataView) bloom(i int) int64 {
	return int64(binary.LittleEndian.Uint64(v.raw[v.blooms+8*i:]))
}
func (v *dataView) traceID(i int) (id [16]byte) {
	if o := v.traceAt[i]; o >= 0 {
		id = [16]byte(v.raw[o : o+16])
	}
	return id
}

// body returns record i's body, in v.raw's memory.
func (v *dataView) body(i int) []byte { return v.raw[v.bodyAt[i]:v.bodyAt[i+1]] }

// fill sets the fields of r, record i, that the data column holds (not
// its body and payload), r.time being set already.
func (v *dataView) fill(i int, r *logRow) {
	r.observed = time.UnixMicro(r.time.UnixMicro() + v.observed[i])
	r.id, r.resource, r.spanID, r.bloom = v.id(i), v.resources[v.resIdx[i]], v.spanID(i), v.bloom(i)
	r.traceID, r.sevText = v.traceID(i), v.texts[v.textIdx[i]]
}

// decodeData decodes a block's data column into rows, whose time and
// severity (from decodeTimes) must be set already. The rows' bodies share
// one string, their payloads one buffer, which the rows own.
func (c *blockCodec) decodeData(frame []byte, rows []logRow) error {
	raw, err := c.decompress(frame, "data", nil)
	if err != nil {
		return err
	}
	var v dataView
	if err := v.parse(raw, len(rows)); err != nil {
		return err
	}
	n := len(rows)
	// The bodies become one string that each row's body is a part of: one
	// allocation per block, not per record.
	all := string(raw[v.bodyAt[0]:v.bodyAt[n]])
	for i := range rows {
		r := &rows[i]
		v.fill(i, r)
		r.body = all[v.bodyAt[i]-v.bodyAt[0] : v.bodyAt[i+1]-v.bodyAt[0]]
		r.payload = raw[v.payloadAt[i]:v.payloadAt[i+1]:v.payloadAt[i+1]]
	}
	return nil
}

// decodeBlock decodes a whole block: its rows in (time, id) order.
func (c *blockCodec) decodeBlock(start time.Time, service int32, times, data []byte) ([]logRow, error) {
	ts, sev, err := c.decodeTimes(start, times)
	if err != nil {
		return nil, err
	}
	rows := make([]logRow, len(ts))
	for i := range rows {
		rows[i].time, rows[i].severity, rows[i].service = time.UnixMicro(ts[i]), sev[i], service
	}
	if err := c.decodeData(data, rows); err != nil {
		return nil, err
	}
	return rows, nil
}
