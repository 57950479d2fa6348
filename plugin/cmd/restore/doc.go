// Package restore implements `kubectl dr restore`: files of a backup set
// back onto their nodes, previewed first and confirmed; Files is the same
// preview, confirmation and restore for other verbs (objects restore
// --with-data). The agents do the work; this package never imports agent/.
package restore
