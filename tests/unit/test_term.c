/*
 * What `logs` and `results` write to a terminal: control characters shown, never obeyed; the
 * same bytes exactly when the output is not a terminal.
 */
#include <stdlib.h>
#include <string.h>

#include "check_main.h"

#include "cli/term.h"

/* term_write into a memory buffer; returns the text (freed by the caller). */
static char *written(const char *s, size_t n, bool escape)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(term_write(f, s, n, escape), 0);
    ck_assert_int_eq(fclose(f), 0);
    return buf;
}

#define ck_written(in, escape, want)                                                               \
    do {                                                                                           \
        char *got = written(in, sizeof(in) - 1, escape);                                           \
        ck_assert_mem_eq(got, want, sizeof(want));                                                 \
        free(got);                                                                                 \
    } while (0)

START_TEST(plain_text_and_tabs_pass_unchanged)
{
    ck_written("page 1\tok caf\xc3\xa9", true, "page 1\tok caf\xc3\xa9");
}
END_TEST

START_TEST(escape_sequences_are_shown_in_caret_notation)
{
    /* Window title (OSC 0), clear screen (CSI 2J), bell. */
    ck_written("\x1b]0;pwned\x07\x1b[2J", true, "^[]0;pwned^G^[[2J");
}
END_TEST

START_TEST(osc52_clipboard_write_is_harmless)
{
    ck_written("\x1b]52;c;ZWNobyBoaQ==\x1b\\", true, "^[]52;c;ZWNobyBoaQ==^[\\");
}
END_TEST

START_TEST(c1_controls_and_del_are_shown)
{
    /* U+009B is CSI in one character; U+00A0 (no-break space) is text. */
    ck_written("\xc2\x9b"
               "2J\x7f\xc2\xa0",
               true, "\\u009b2J^?\xc2\xa0");
}
END_TEST

START_TEST(nul_and_invalid_utf8_do_not_stop_the_line)
{
    ck_written("a\0b\xff\xc2", true, "a^@b\xff\xc2");
}
END_TEST

START_TEST(not_a_terminal_gets_the_bytes_exactly)
{
    ck_written("\x1b[2J\xc2\x9b", false, "\x1b[2J\xc2\x9b");
}
END_TEST

static Suite *term_suite(void)
{
    Suite *s = suite_create("term");
    TCase *tc = tcase_create("write");
    tcase_add_test(tc, plain_text_and_tabs_pass_unchanged);
    tcase_add_test(tc, escape_sequences_are_shown_in_caret_notation);
    tcase_add_test(tc, osc52_clipboard_write_is_harmless);
    tcase_add_test(tc, c1_controls_and_del_are_shown);
    tcase_add_test(tc, nul_and_invalid_utf8_do_not_stop_the_line);
    tcase_add_test(tc, not_a_terminal_gets_the_bytes_exactly);
    suite_add_tcase(s, tc);
    return s;
}

const struct unit_tests unit_tests = {.suite = term_suite};
