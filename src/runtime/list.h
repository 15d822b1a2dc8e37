/*
 * Intrusive doubly linked lists: the caller embeds a struct list_link in its own struct, and the
 * list is a struct list_link * pointing at the first link, NULL when it is empty (so a list in
 * zeroed memory is empty). Each link points at the next one and at the pointer that points at it
 * (the head, or the next field of the one before), so a link unlinks itself without the list;
 * a head must therefore not move (be copied elsewhere) while its list holds links. Items are added
 * at the head and walked from there: newest first. Not thread-safe.
 */
#ifndef CRAWLAB_LIST_H
#define CRAWLAB_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct list_link {
    struct list_link *next;   /* NULL at the end */
    struct list_link **pprev; /* what points at this link; NULL while it is in no list */
};

/* Links n, which is in no list, first in the list at *head. */
static inline void list_push(struct list_link **head, struct list_link *n)
{
    n->next = *head;
    if (n->next)
        n->next->pprev = &n->next;
    n->pprev = head;
    *head = n;
}

/* Takes n out of its list and leaves it in none (next and pprev NULL). Does nothing to a link in
 * no list, such as a zeroed one. */
static inline void list_unlink(struct list_link *n)
{
    if (!n->pprev)
        return;
    *n->pprev = n->next;
    if (n->next)
        n->next->pprev = n->pprev;
    n->next = NULL;
    n->pprev = NULL;
}

/* Whether n is in a list. */
static inline bool list_linked(const struct list_link *n)
{
    return n->pprev != NULL;
}

/* For list_item: the address offset bytes before l, or NULL for a NULL l. */
static inline void *list_item_(struct list_link *l, size_t offset)
{
    return l ? (char *)l - offset : NULL;
}

/* The item (a type *) holding link l in its field member; NULL when l is NULL, such as the head of
 * an empty list or the next of the last link. */
#define list_item(l, type, member) ((type *)list_item_((l), offsetof(type, member)))

/* Runs the statement after it for each item of the list whose first link is head, in the list's
 * order: v, declared here as a type *, is the item, whose link is its field member. The item after
 * v is found before the statement runs, so the statement may unlink v, and free it, but not the
 * one after it. Give it a block, its brace on the next line (as clang-format has it). */
#define list_foreach(v, head, type, member)                                                        \
    for (type *v = list_item((head), type, member), *v##_next_;                                    \
         v && ((v##_next_ = list_item(v->member.next, type, member)), 1); v = v##_next_)

#endif
