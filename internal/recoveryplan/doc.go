// Package recoveryplan picks what a full recovery restores: for one
// moment (--to TIME, a backup set, or the latest), the newest restorable
// point of every layer at or before it (the datastore snapshot, each
// node's restic snapshot, each WAL source's recovery target, each bucket
// source's pass), with why each was picked or why a layer has nothing.
// kubectl dr recover runs the plan and kubectl dr drill rehearses it; the
// picking is pure (Pick), reading the store is Load.
package recoveryplan
