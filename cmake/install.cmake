# install.cmake - what `cmake --install BUILD [--prefix P]` puts where
# (docs/operations.md, "A production layout"):
#
#   bin/sluiced, bin/sluice                   the broker and the CLI
#   lib/libsluice.so*                         the C client library
#   include/sluice.h                          its API
#   lib/pkgconfig/sluice.pc                   pkg-config --cflags --libs sluice
#   lib/systemd/system/sluiced.service        an example unit (dedicated user,
#                                             hardening, LimitNOFILE)
#   etc/sluice/sluiced.conf                   an example configuration
#   share/doc/sluice/                         the docs, sluiced --help text
include(GNUInstallDirs)

install(TARGETS sluiced sluice_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS sluice LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES ${CMAKE_SOURCE_DIR}/client/include/sluice.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# pkg-config file for the installed library (the in-tree one points into
# the build directory). ${prefix} is resolved at install time so that
# --prefix is honoured.
set(SL_PC_INSTALL_IN ${CMAKE_SOURCE_DIR}/dist/sluice.pc.in)
install(CODE "
  set(prefix \"\${CMAKE_INSTALL_PREFIX}\")
  set(libdir \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}\")
  set(includedir \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_INCLUDEDIR}\")
  configure_file(${SL_PC_INSTALL_IN}
    \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig/sluice.pc\" @ONLY)
  message(STATUS \"Installing: \$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig/sluice.pc\")
")

# The unit names the installed sluiced (bin dir under the prefix).
install(CODE "
  set(SLUICED \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}/sluiced\")
  set(SYSCONFDIR \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_SYSCONFDIR}\")
  if(\"\${CMAKE_INSTALL_PREFIX}\" STREQUAL \"/usr\")
    set(SYSCONFDIR \"/etc\")
  endif()
  configure_file(${CMAKE_SOURCE_DIR}/dist/sluiced.service.in
    \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/lib/systemd/system/sluiced.service\" @ONLY)
  message(STATUS \"Installing: \$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/lib/systemd/system/sluiced.service\")
")
install(FILES ${CMAKE_SOURCE_DIR}/dist/sluiced.conf
        DESTINATION ${CMAKE_INSTALL_SYSCONFDIR}/sluice)

# Docs, and the --help text of both programs (the man-page substitute).
install(FILES ${CMAKE_SOURCE_DIR}/README.md ${CMAKE_SOURCE_DIR}/sluiced.conf
        DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY ${CMAKE_SOURCE_DIR}/docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR}
        FILES_MATCHING PATTERN "*.md" PATTERN "*.png")
install(CODE "
  foreach(p sluiced sluice)
    execute_process(COMMAND ${CMAKE_BINARY_DIR}/bin/\${p} --help
                    OUTPUT_FILE \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_DOCDIR}/\${p}-help.txt\")
  endforeach()
")
