package otlp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/vigil-obs/vigil/ingest"
	"github.com/vigil-obs/vigil/ingest/internal/receiver"
	"github.com/vigil-obs/vigil/internal/auth"
	"github.com/vigil-obs/vigil/internal/inflight"
)

// Content types of OTLP/HTTP. Answers use the request's, spelled exactly
// so, as exporters compare them literally.
const (
	contentTypeProto = "application/x-protobuf"
	contentTypeJSON  = "application/json"
)

// maxJSONDepth bounds the nesting of JSON bodies. pdata's JSON decoder has
// no depth limit of its own; this leaves room for attribute values nested
// as deep as ingest.MaxAttributeValueDepth allows (up to four JSON levels
// each) plus the fixed envelope, so that such values reach validation and
// get its precise message.
const maxJSONDepth = 4*ingest.MaxAttributeValueDepth + 64

// encoding is the body encoding of an OTLP/HTTP request and its answer.
type encoding int

const (
	encProto encoding = iota + 1
	encJSON
)

func (e encoding) String() string {
	if e == encJSON {
		return "json"
	}
	return "protobuf"
}

func (e encoding) contentType() string {
	if e == encJSON {
		return contentTypeJSON
	}
	return contentTypeProto
}

// otlpMessage is what the pdata request and response wrappers of every
// signal implement.
type otlpMessage interface {
	MarshalProto() ([]byte, error)
	UnmarshalProto([]byte) error
	MarshalJSON() ([]byte, error)
	UnmarshalJSON([]byte) error
}

// unmarshal decodes body into m. On failure it returns an error naming
// where the body is wrong as precisely as it can: the field path and byte
// offset for protobuf (md describes m's message), the text before the
// error for JSON.
func (e encoding) unmarshal(m otlpMessage, md protoreflect.MessageDescriptor, body []byte) error {
	if e == encJSON {
		if err := checkJSONShape(body, maxJSONDepth); err != nil {
			return err
		}
		if err := m.UnmarshalJSON(body); err != nil {
			return errors.New(tidyJSONError(err))
		}
		return nil
	}
	if err := m.UnmarshalProto(body); err != nil {
		if where := locateProtoError(body, md); where != "" {
			return errors.New(where)
		}
		return err
	}
	return nil
}

func (e encoding) marshal(m otlpMessage) ([]byte, error) {
	if e == encJSON {
		return m.MarshalJSON()
	}
	return m.MarshalProto()
}

// checkJSONShape refuses what pdata's JSON decoder would let through or
// choke on: nesting of objects and arrays deeper than maxDepth levels (its
// decoder recurses without bound) and data after the top-level object (it
// stops reading there). Syntax errors are left to the decoder.
func checkJSONShape(data []byte, maxDepth int) error {
	depth := 0
	inString, escaped := false, false
	for i, c := range data {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			if depth > maxDepth {
				return fmt.Errorf("JSON nested deeper than %d levels at byte %d", maxDepth, i)
			}
		case '}', ']':
			depth--
			if depth == 0 {
				if rest := bytes.TrimLeft(data[i+1:], " \t\r\n"); len(rest) > 0 {
					return fmt.Errorf("unexpected data after the top-level object at byte %d", len(data)-len(rest))
				}
				return nil
			}
		}
	}
	return nil
}

// requestEncoding returns the encoding named by the Content-Type of r.
func requestEncoding(r *http.Request) (encoding, bool) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return 0, false
	}
	switch mt {
	case contentTypeProto:
		return encProto, true
	case contentTypeJSON:
		return encJSON, true
	}
	return 0, false
}

// httpSignal decodes the body of one signal's OTLP/HTTP request, exports
// it and returns the encoded response, or the status of the failure.
type httpSignal interface {
	export(ctx context.Context, body []byte, enc encoding) ([]byte, *status.Status)
}

// httpHandler serves one signal's OTLP/HTTP path.
type httpHandler struct {
	signal httpSignal
	auth   *auth.Tokens
	budget *inflight.Budget
	body   receiver.BodyReader
	logger *slog.Logger
}

func (h *httpHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	enc, encOK := requestEncoding(r)
	if fail := receiver.Authenticate(w, r, h.auth); fail != nil {
		writeError(w, enc, fail)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, enc, &receiver.Failure{HTTP: http.StatusMethodNotAllowed,
			Status: status.New(codes.Unimplemented, "method "+r.Method+" not allowed, OTLP/HTTP uses POST")})
		return
	}
	if !encOK {
		writeError(w, 0, &receiver.Failure{HTTP: http.StatusUnsupportedMediaType, Status: receiver.InvalidArgument(
			fmt.Sprintf("unsupported content type %q, use %s or %s", r.Header.Get("Content-Type"), contentTypeProto, contentTypeJSON))})
		return
	}
	res := h.budget.Reserve()
	defer res.Release()
	body, fail := h.body.Read(w, r, res)
	if fail != nil {
		res.Release()
		h.logger.DebugContext(r.Context(), "invalid otlp request", "path", r.URL.Path, "status", fail.HTTP, "err", fail.Status.Message())
		writeError(w, enc, fail)
		return
	}
	resp, st := h.signal.export(r.Context(), body, enc)
	if st != nil {
		if st.Code() == codes.InvalidArgument {
			h.logger.DebugContext(r.Context(), "invalid otlp request", "path", r.URL.Path, "err", st.Message())
		}
		writeError(w, enc, receiver.Fail(st))
		return
	}
	w.Header().Set("Content-Type", enc.contentType())
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(resp)
}

// writeError answers with f's status encoded as a google.rpc.Status in
// enc, as the OTLP/HTTP specification asks, or as plain text when the
// request's encoding is unknown. Retryable answers get a Retry-After
// header.
func writeError(w http.ResponseWriter, enc encoding, f *receiver.Failure) {
	var (
		body []byte
		err  error
	)
	switch enc {
	case encProto:
		body, err = proto.Marshal(f.Status.Proto())
	case encJSON:
		body, err = protojson.Marshal(f.Status.Proto())
	}
	if enc == 0 || err != nil {
		receiver.WriteText(w, f)
		return
	}
	receiver.WriteHeaders(w.Header(), f)
	w.Header().Set("Content-Type", enc.contentType())
	w.WriteHeader(f.HTTP)
	_, _ = w.Write(body)
}
