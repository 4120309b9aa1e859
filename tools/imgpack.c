/* The imgpack command: placeholder until the subcommands land. */
#include <stdio.h>

#include "imgpack/imgpack.h"

int main(void) {
    printf("imgpack %s\n", imgpack_version());
    return 0;
}
