package service

import (
	"context"
	"database/sql"
)

// GRPCError is the mapping the gRPC server applies to every handler's error; tests that
// call handlers directly apply it themselves.
var GRPCError = grpcError

// InjectAfterAppend sets a function that runs inside every decision's transaction after
// its events are appended and before the rows derived from them are written.
func InjectAfterAppend(s *Service, f func(context.Context, *sql.Tx) error) { s.afterAppend = f }
