#include "check_main.h"

#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    if (unit_tests.setup && unit_tests.setup() != 0) {
        fprintf(stderr, "unit test setup failed; no test ran\n");
        return EXIT_FAILURE;
    }
    SRunner *sr = srunner_create(unit_tests.suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    if (unit_tests.teardown)
        unit_tests.teardown();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
