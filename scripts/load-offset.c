/* load-offset FILE OFFSET: moves the contents of a 64-bit ELF shared object
 * that follow its headers further into the file, so that its first loadable
 * segment starts at file offset OFFSET; addresses do not change.
 *
 * Why (see src/hugeslab.ld): the kernel places a file mapping of 2 MiB or
 * more at an address congruent to its file offset modulo 2 MiB, and the
 * loader maps libc right below the library. The first segment's file offset
 * therefore decides where libc starts within the kernel's 64 KiB
 * fault-around windows, which decides how many pages of libc a process
 * keeps. The linker puts the first segment at the first page after the
 * headers and has no option to put it elsewhere.
 *
 * Requires what src/hugeslab.ld makes: the headers in no loadable segment,
 * so that nothing in memory refers to the bytes moved over. Every file
 * offset at or past the first segment's (segments, sections, the section
 * header table) moves by the same multiple of the page size, so each
 * segment's offset stays congruent to its address. Run on a file whose first
 * segment is already at OFFSET, it changes nothing. */
#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The smallest page size a loader maps with; segments' offsets and
 * addresses agree modulo this. */
#define PAGE 4096u

static int fail(const char *file, const char *why)
{
    fprintf(stderr, "load-offset: %s: %s\n", file, why);
    return 1;
}

/* The whole of `file` in a malloc'd buffer, its size in *size; NULL on error. */
static unsigned char *read_whole(const char *file, size_t *size)
{
    FILE *f = fopen(file, "rb");
    if (!f) return NULL;
    unsigned char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long end = ftell(f);
        if (end > 0 && fseek(f, 0, SEEK_SET) == 0) {
            buf = malloc((size_t)end);
            if (buf && fread(buf, 1, (size_t)end, f) != (size_t)end) {
                free(buf);
                buf = NULL;
            }
            *size = (size_t)end;
        }
    }
    fclose(f);
    return buf;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: load-offset FILE OFFSET\n");
        return 2;
    }
    const char *file = argv[1];
    char *end;
    unsigned long long want = strtoull(argv[2], &end, 0);
    if (*end || want % PAGE) return fail(file, "OFFSET must be a multiple of 4096");
    size_t size = 0;
    unsigned char *in = read_whole(file, &size);
    if (!in) return fail(file, "cannot read");
    Elf64_Ehdr *eh = (Elf64_Ehdr *)(void *)in;
    if (size < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) ||
        eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_phentsize != sizeof(Elf64_Phdr) ||
        eh->e_phoff + (size_t)eh->e_phnum * sizeof(Elf64_Phdr) > size ||
        (eh->e_shnum && (eh->e_shentsize != sizeof(Elf64_Shdr) ||
                         eh->e_shoff + (size_t)eh->e_shnum * sizeof(Elf64_Shdr) > size)))
        return fail(file, "not a 64-bit ELF file");
    Elf64_Phdr *ph = (Elf64_Phdr *)(void *)(in + eh->e_phoff);
    Elf64_Shdr *sh = (Elf64_Shdr *)(void *)(in + eh->e_shoff);
    Elf64_Off first = 0;
    int have_load = 0;
    for (unsigned i = 0; i < eh->e_phnum; i++) {
        /* A segment with nothing in the file (the registry's, zero-filled)
         * may name any offset congruent to its address: it is not moved. */
        if (ph[i].p_type != PT_LOAD || ph[i].p_filesz == 0) continue;
        if (ph[i].p_align > PAGE) return fail(file, "a segment is aligned to more than a page");
        if (!have_load || ph[i].p_offset < first) first = ph[i].p_offset;
        have_load = 1;
    }
    if (!have_load) return fail(file, "no loadable segment");
    if (first == want) return 0;
    if (first > want) return fail(file, "the first segment already lies past OFFSET");
    if (first < eh->e_phoff + (size_t)eh->e_phnum * sizeof(Elf64_Phdr) || first % PAGE)
        return fail(file, "the headers are inside a loadable segment");
    size_t gap = (size_t)(want - first);
    for (unsigned i = 0; i < eh->e_phnum; i++)
        if (ph[i].p_offset >= first) ph[i].p_offset += gap;
    for (unsigned i = 0; i < eh->e_shnum; i++)
        if (sh[i].sh_offset >= first) sh[i].sh_offset += gap;
    if (eh->e_shoff >= first) eh->e_shoff += gap;

    unsigned char *out = calloc(1, size + gap);
    if (!out) return fail(file, "out of memory");
    memcpy(out, in, first);
    memcpy(out + first + gap, in + first, size - first);
    FILE *f = fopen(file, "wb");
    if (!f || fwrite(out, 1, size + gap, f) != size + gap || fclose(f) != 0)
        return fail(file, "cannot write");
    free(out);
    free(in);
    return 0;
}
