// Package printers holds the view types kubectl dr prints, their table
// columns, progress reporting and the -o json error; -o json|yaml go
// through cli-runtime's printers. It depends on the wire types and the
// store's records only, never on a verb or anything under agent/.
package printers
