# The build directory's GNUmakefile (put there by configure-libpq): libpq.a and the two archives
# of PostgreSQL's portability and common code that it links, built with -fPIC and -DFRONTEND as
# libpq's own shared library uses them (the _shlib variants), and the public headers.
top_builddir = .
include src/Makefile.global

all:
	$(MAKE) -C src/port libpgport_shlib.a
	$(MAKE) -C src/common libpgcommon_shlib.a
	$(MAKE) -C src/interfaces/libpq all-static-lib SHLIB_PREREQS=

install: all
	$(MKDIR_P) '$(DESTDIR)$(libdir)' '$(DESTDIR)$(includedir)'
	$(INSTALL_STLIB) src/interfaces/libpq/libpq.a '$(DESTDIR)$(libdir)/libpq.a'
	$(INSTALL_STLIB) src/common/libpgcommon_shlib.a '$(DESTDIR)$(libdir)/libpgcommon_shlib.a'
	$(INSTALL_STLIB) src/port/libpgport_shlib.a '$(DESTDIR)$(libdir)/libpgport_shlib.a'
	$(INSTALL_DATA) $(top_srcdir)/src/interfaces/libpq/libpq-fe.h '$(DESTDIR)$(includedir)'
	$(INSTALL_DATA) $(top_srcdir)/src/include/postgres_ext.h '$(DESTDIR)$(includedir)'
	$(INSTALL_DATA) src/include/pg_config_ext.h '$(DESTDIR)$(includedir)'

.PHONY: all install
