package service

import (
	"context"
	"database/sql"

	"github.com/simpleci/simpleci/libs/eventstore"
)

// GRPCError is the mapping the gRPC server applies to every handler's error; tests that
// call handlers directly apply it themselves.
var GRPCError = grpcError

// InjectAfterAppend sets a function that runs inside every decision's transaction after
// its events are appended and before the rows derived from them are written.
func InjectAfterAppend(s *Service, f func(context.Context, *sql.Tx) error) { s.afterAppend = f }

// AppendRaw appends events to a stream as they are, past the checks of a decision: an
// event recorded by an older version (one over today's size bounds).
func AppendRaw(ctx context.Context, s *Service, stream string, evs ...eventstore.Event) error {
	_, err := s.store.Append(ctx, stream, eventstore.ExpectAny, evs...)
	if err == nil {
		s.appended.Notify()
	}
	return err
}
