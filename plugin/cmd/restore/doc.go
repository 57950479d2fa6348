// Package restore implements `kubectl dr restore`: files of a backup set
// back onto their nodes, previewed first and confirmed. The agents do the
// work; this package never imports agent/.
package restore
