package auth

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// checkContext checks the first "authorization" metadata value of an
// incoming gRPC call and returns a codes.Unauthenticated status error when
// it does not pass Check.
func (t *Tokens) checkContext(ctx context.Context) error {
	var value string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("authorization"); len(v) > 0 {
			value = v[0]
		}
	}
	if err := t.Check(value); err != nil {
		return status.Error(codes.Unauthenticated, err.Error())
	}
	return nil
}

// UnaryServerInterceptor returns a gRPC interceptor that rejects unary calls
// whose "authorization" metadata does not pass Check with
// codes.Unauthenticated, without calling the handler. When authentication
// is off it calls the handler directly.
func (t *Tokens) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !t.Enabled() {
			return handler(ctx, req)
		}
		if err := t.checkContext(ctx); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor returns a gRPC interceptor that rejects streams
// whose "authorization" metadata does not pass Check with
// codes.Unauthenticated before the handler sees any message. When
// authentication is off it calls the handler directly.
func (t *Tokens) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if !t.Enabled() {
			return handler(srv, ss)
		}
		if err := t.checkContext(ss.Context()); err != nil {
			return err
		}
		return handler(srv, ss)
	}
}
